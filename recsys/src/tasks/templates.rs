//! Prompt templates per task. Placeholders `{history}`, `{titles}`, `{item}`, `{title}`,
//! `{description}`, `{preference}` are filled in one left-to-right pass, so text inside a
//! filled value (a title that contains "{item}") is never expanded again.

/// (user turn, assistant turn).
pub type Template = (&'static str, &'static str);

/// The direct-mode user turn of SPEC.md section 5 (also the first seqrec template, so
/// training and evaluation share it).
pub const DIRECT_USER: &str =
    "Here is the item interaction history of the user: {history}, what to recommend to the user next?";

pub const SEQREC: &[Template] = &[
    (DIRECT_USER, "{item}"),
    ("The user has interacted with the following items in order: {history}. Predict the item the user will interact with next.", "{item}"),
    ("Given this purchase sequence, oldest first: {history}. Which item should be recommended next?", "{item}"),
    ("Based on the items {history} that the user bought recently, what will the user most likely buy next?", "{item}"),
    ("A shopper's history reads {history}. Recommend the next product for this shopper.", "{item}"),
];

pub const ITEM2INDEX_TITLE: &[Template] = &[
    ("Which item has the title \"{title}\"?", "{item}"),
    (
        "What is the ID of the product called \"{title}\"?",
        "{item}",
    ),
    ("Give the item identifier for: {title}", "{item}"),
];

pub const ITEM2INDEX_DESC: &[Template] = &[
    (
        "An item is described as follows: \"{description}\". Which item is it?",
        "{item}",
    ),
    (
        "Find the product that matches this description: {description}",
        "{item}",
    ),
];

pub const ITEM2INDEX_BOTH: &[Template] = &[
    ("Here is an item titled \"{title}\" with the description \"{description}\". What is its ID?", "{item}"),
    ("Title: {title}\nDescription: {description}\nWhich item is this?", "{item}"),
];

pub const INDEX2ITEM_TITLE: &[Template] = &[
    ("What is the title of item {item}?", "{title}"),
    ("Tell me the name of the product {item}.", "{title}"),
    ("Item {item} is called what?", "{title}"),
];

pub const INDEX2ITEM_DESC: &[Template] = &[
    ("Describe item {item}.", "{description}"),
    (
        "What does the product {item} look like? Give its description.",
        "{description}",
    ),
];

pub const INDEX2ITEM_BOTH: &[Template] = &[
    (
        "Give the title and the description of item {item}.",
        "Title: {title}\nDescription: {description}",
    ),
    (
        "What is item {item}? Answer with its title and description.",
        "{title}: {description}",
    ),
];

/// fusionseqrec: history IDs -> next item's title, and history titles -> next item ID.
pub const FUSION_IDS_TO_TITLE: &[Template] = &[
    ("The user's interaction history is {history}. What is the title of the item the user will interact with next?", "{title}"),
    ("Given the purchases {history}, name the product this user is likely to buy next.", "{title}"),
    ("After buying {history}, which product (give its title) does the user want next?", "{title}"),
];

pub const FUSION_TITLES_TO_ID: &[Template] = &[
    (
        "The user bought these items in order: {titles}. Which item should be recommended next?",
        "{item}",
    ),
    (
        "Recent purchases of a user, oldest first: {titles}. Predict the ID of the next item.",
        "{item}",
    ),
    (
        "A user interacted with {titles}. Recommend the next item.",
        "{item}",
    ),
];

/// itemsearch: the user's preference/intent text (+ history) -> the item.
pub const ITEMSEARCH: &[Template] = &[
    ("A user with the history {history} is looking for something: \"{preference}\". Which item fits?", "{item}"),
    ("Search request: {preference}\nThe user's past purchases: {history}. Recommend one item.", "{item}"),
];

/// preferenceobtain: history -> the user's preference text.
pub const PREFERENCE: &[Template] = &[
    (
        "Here is a user's purchase history: {history}. Summarise the user's preferences.",
        "{preference}",
    ),
    (
        "What does a user who bought {history} care about?",
        "{preference}",
    ),
];

/// Fill `{name}` placeholders from `vars` in one pass; unknown placeholders are kept verbatim.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let filled = after.find('}').and_then(|close| {
            let name = &after[..close];
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v, close))
        });
        match filled {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_pass() {
        let s = render(
            "A {title} B {item} {x}",
            &[("title", "{item}"), ("item", "I")],
        );
        assert_eq!(s, "A {item} B I {x}");
    }
}
