//! A prefix trie over the catalogue's item IDs (token sequences), used to constrain beam search
//! and the answer span of sampled reasoning so every generated ID names a real item.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
struct Node {
    children: BTreeMap<u32, usize>,
    /// Index of the item whose ID ends here.
    item: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct PrefixTrie {
    nodes: Vec<Node>,
    items: usize,
    /// Tokens in the longest ID.
    depth: usize,
}

/// A position in the trie: the root, or the node after some prefix.
pub type TrieNode = usize;

impl PrefixTrie {
    pub const ROOT: TrieNode = 0;

    /// Builds the trie from each item's token ids; item `i` is `ids[i]`. Duplicate IDs or an ID
    /// that is a prefix of another are errors (the indexer guarantees neither).
    pub fn new(ids: &[Vec<u32>]) -> Result<Self, String> {
        let mut t = PrefixTrie {
            nodes: vec![Node::default()],
            items: ids.len(),
            depth: ids.iter().map(Vec::len).max().unwrap_or(0),
        };
        for (item, seq) in ids.iter().enumerate() {
            if seq.is_empty() {
                return Err(format!("item {item} has an empty ID"));
            }
            let mut node = Self::ROOT;
            for &tok in seq {
                if t.nodes[node].item.is_some() {
                    return Err(format!("an ID is a prefix of item {item}'s ID"));
                }
                node = match t.nodes[node].children.get(&tok) {
                    Some(&c) => c,
                    None => {
                        t.nodes.push(Node::default());
                        let c = t.nodes.len() - 1;
                        t.nodes[node].children.insert(tok, c);
                        c
                    }
                };
            }
            if let Some(other) = t.nodes[node].item {
                return Err(format!("items {other} and {item} share an ID"));
            }
            if !t.nodes[node].children.is_empty() {
                return Err(format!("item {item}'s ID is a prefix of another ID"));
            }
            t.nodes[node].item = Some(item);
        }
        Ok(t)
    }

    pub fn len(&self) -> usize {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Tokens in the longest ID.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Tokens allowed after `node`, in ascending id order.
    pub fn allowed(&self, node: TrieNode) -> impl Iterator<Item = u32> + '_ {
        self.nodes[node].children.keys().copied()
    }

    pub fn next(&self, node: TrieNode, tok: u32) -> Option<TrieNode> {
        self.nodes[node].children.get(&tok).copied()
    }

    /// The item whose ID ends at `node`, if any.
    pub fn item(&self, node: TrieNode) -> Option<usize> {
        self.nodes[node].item
    }

    /// Follows a whole token sequence from the root.
    pub fn walk(&self, seq: &[u32]) -> Option<TrieNode> {
        seq.iter().try_fold(Self::ROOT, |n, &t| self.next(n, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_and_rejects_prefixes_and_duplicates() {
        let t = PrefixTrie::new(&[vec![1, 2, 3], vec![1, 2, 4], vec![5, 6, 7, 8]]).unwrap();
        assert_eq!(t.allowed(PrefixTrie::ROOT).collect::<Vec<_>>(), vec![1, 5]);
        let n = t.walk(&[1, 2]).unwrap();
        assert_eq!(t.allowed(n).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(t.item(t.walk(&[1, 2, 4]).unwrap()), Some(1));
        assert_eq!(t.item(n), None);
        assert!(t.walk(&[9]).is_none());
        assert!(PrefixTrie::new(&[vec![1, 2], vec![1, 2]]).is_err());
        assert!(PrefixTrie::new(&[vec![1, 2], vec![1, 2, 3]]).is_err());
        assert!(PrefixTrie::new(&[vec![1, 2, 3], vec![1, 2]]).is_err());
    }
}
