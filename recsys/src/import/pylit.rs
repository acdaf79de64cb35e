//! A parser for the Python literals of the Amazon 2014 metadata dumps (each line is a dict's
//! `repr`, not JSON): dicts, lists, tuples, strings in either quote style with escapes and
//! optional `u`/`b`/`r` prefixes, adjacent string concatenation, ints, floats, True/False/None
//! and `nan`/`inf`. The result is a `serde_json::Value` (tuples become arrays, non-finite
//! floats and non-string dict keys are rendered as JSON can hold them).

use serde_json::{Map, Number, Value};

/// Parse one literal; the error gives the 1-based character column.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let v = p.value()?;
    p.skip_ws();
    if p.pos < p.chars.len() {
        return Err(p.err("trailing characters after the literal"));
    }
    Ok(v)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn err(&self, msg: &str) -> String {
        format!("{msg} at column {}", self.pos + 1)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some('{') => self.dict(),
            Some('[') => self.seq(']').map(Value::Array),
            Some('(') => self.seq(')').map(Value::Array),
            Some('\'' | '"') => self.strings(),
            Some(c) if c.is_ascii_digit() || matches!(c, '-' | '+' | '.') => self.number(),
            Some(c) if c.is_alphabetic() || c == '_' => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                // A string prefix such as u'..' or b".." or r'..'.
                if matches!(self.peek(), Some('\'' | '"'))
                    && word.len() <= 2
                    && word.chars().all(|c| "uUbBrR".contains(c))
                {
                    self.pos = start;
                    return self.strings();
                }
                match word.as_str() {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" | "nan" | "inf" => Ok(Value::Null),
                    _ => {
                        self.pos = start;
                        Err(self.err(&format!("unknown name {word:?}")))
                    }
                }
            }
            Some(c) => Err(self.err(&format!("unexpected character {c:?}"))),
        }
    }

    fn dict(&mut self) -> Result<Value, String> {
        self.pos += 1; // '{'
        let mut map = Map::new();
        loop {
            self.skip_ws();
            if self.peek() == Some('}') {
                self.pos += 1;
                return Ok(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(s) => s,
                Value::Null => "None".to_string(),
                other => other.to_string(),
            };
            self.skip_ws();
            if self.peek() != Some(':') {
                return Err(self.err("expected ':' after a dict key"));
            }
            self.pos += 1;
            let v = self.value()?;
            map.insert(key, v);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                _ => return Err(self.err("expected ',' or '}' in a dict")),
            }
        }
    }

    fn seq(&mut self, close: char) -> Result<Vec<Value>, String> {
        self.pos += 1; // '[' or '('
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(out);
            }
            out.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => return Err(self.err(&format!("expected ',' or '{close}'"))),
            }
        }
    }

    /// One or more adjacent string literals, concatenated as Python does.
    fn strings(&mut self) -> Result<Value, String> {
        let mut out = String::new();
        loop {
            self.string(&mut out)?;
            let save = self.pos;
            self.skip_ws();
            let at_prefix = {
                let mut q = self.pos;
                while q < self.chars.len() && q - self.pos < 2 && "uUbBrR".contains(self.chars[q]) {
                    q += 1;
                }
                matches!(self.chars.get(q), Some('\'' | '"'))
            };
            if !at_prefix {
                self.pos = save;
                return Ok(Value::String(out));
            }
        }
    }

    fn string(&mut self, out: &mut String) -> Result<(), String> {
        let mut raw = false;
        while let Some(c) = self.peek() {
            if "uUbBrR".contains(c) {
                raw |= c == 'r' || c == 'R';
                self.pos += 1;
            } else {
                break;
            }
        }
        let quote = self.peek().ok_or_else(|| self.err("expected a string"))?;
        let triple = self.chars.get(self.pos..self.pos + 3) == Some(&[quote; 3][..]);
        self.pos += if triple { 3 } else { 1 };
        loop {
            let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
            if c == quote {
                if !triple {
                    self.pos += 1;
                    return Ok(());
                }
                if self.chars.get(self.pos..self.pos + 3) == Some(&[quote; 3][..]) {
                    self.pos += 3;
                    return Ok(());
                }
            }
            if c == '\n' && !triple {
                return Err(self.err("newline inside a string"));
            }
            self.pos += 1;
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = self.peek().ok_or_else(|| self.err("unterminated escape"))?;
            if raw {
                out.push('\\');
                out.push(e);
                self.pos += 1;
                continue;
            }
            self.pos += 1;
            match e {
                '\n' => {} // line continuation
                '\\' => out.push('\\'),
                '\'' => out.push('\''),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'v' => out.push('\x0b'),
                'x' => out.push(self.hex_escape(2)?),
                'u' => out.push(self.hex_escape(4)?),
                'U' => out.push(self.hex_escape(8)?),
                '0'..='7' => {
                    let mut v = e.to_digit(8).unwrap();
                    for _ in 0..2 {
                        match self.peek().and_then(|c| c.to_digit(8)) {
                            Some(d) => {
                                v = v * 8 + d;
                                self.pos += 1;
                            }
                            None => break,
                        }
                    }
                    out.push(char::from_u32(v).ok_or_else(|| self.err("bad octal escape"))?);
                }
                // Python keeps unknown escapes verbatim.
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    fn hex_escape(&mut self, digits: usize) -> Result<char, String> {
        let end = self.pos + digits;
        let hex: String = self
            .chars
            .get(self.pos..end)
            .ok_or_else(|| self.err("truncated escape"))?
            .iter()
            .collect();
        let v = u32::from_str_radix(&hex, 16).map_err(|_| self.err("bad hex escape"))?;
        self.pos = end;
        // A lone surrogate (possible in Python 2 reprs) cannot be a Rust char; keep U+FFFD.
        Ok(char::from_u32(v).unwrap_or('\u{fffd}'))
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
        }
        // -inf / -nan
        if self.peek().is_some_and(char::is_alphabetic) {
            let s = self.pos;
            while self.peek().is_some_and(char::is_alphabetic) {
                self.pos += 1;
            }
            let word: String = self.chars[s..self.pos].iter().collect();
            return match word.as_str() {
                "inf" | "nan" => Ok(Value::Null),
                _ => Err(self.err("malformed number")),
            };
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '_' | 'L' | 'l'))
            || (matches!(self.peek(), Some('-' | '+'))
                && matches!(self.chars.get(self.pos - 1), Some('e' | 'E')))
        {
            self.pos += 1;
        }
        // Python 2 long suffix and digit separators are not part of the value.
        let text: String = self.chars[start..self.pos]
            .iter()
            .filter(|c| !matches!(c, '_' | 'L' | 'l'))
            .collect();
        let bad = || format!("malformed number {text:?} at column {}", start + 1);
        if !text.contains(['.', 'e', 'E']) {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::Number(i.into()));
            }
        }
        let f: f64 = text.parse().map_err(|_| bad())?;
        Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amazon_2014_line() {
        let line = r#"{'asin': '0000031852', 'title': "Girls' Ballet Tutu", 'categories': [['Clothing', 'Girls']], 'price': 3.17, 'salesRank': {'Toys & Games': 211836}, 'related': {'also_bought': ('B00JHONN1S',)}}"#;
        assert_eq!(
            parse(line).unwrap(),
            json!({"asin": "0000031852", "title": "Girls' Ballet Tutu",
                   "categories": [["Clothing", "Girls"]], "price": 3.17,
                   "salesRank": {"Toys & Games": 211836},
                   "related": {"also_bought": ["B00JHONN1S"]}})
        );
    }

    #[test]
    fn strings_escapes_and_prefixes() {
        assert_eq!(
            parse(r#"'it\'s \"x\"\n\t\\'"#).unwrap(),
            json!("it's \"x\"\n\t\\")
        );
        assert_eq!(
            parse(r#""caf\xe9 \u00e9\U0001F600 \101""#).unwrap(),
            json!("café é😀 A")
        );
        assert_eq!(parse(r"u'uni' 'code'").unwrap(), json!("unicode"));
        assert_eq!(parse(r"r'a\d'").unwrap(), json!("a\\d"));
        assert_eq!(parse(r"'''tri'ple'''").unwrap(), json!("tri'ple"));
        assert_eq!(parse(r"'\q'").unwrap(), json!("\\q"));
    }

    #[test]
    fn numbers_and_names() {
        assert_eq!(
            parse("[1, -2, 3.5, 1e3, -2.5E-1, 10L, True, False, None, nan, -inf, ()]").unwrap(),
            json!([
                1,
                -2,
                3.5,
                1000.0,
                -0.25,
                10,
                true,
                false,
                null,
                null,
                null,
                []
            ])
        );
        assert_eq!(
            parse("{1: 'a', None: 2,}").unwrap(),
            json!({"1": "a", "None": 2})
        );
    }

    #[test]
    fn errors_have_columns() {
        assert!(parse("{'a': 1").unwrap_err().contains("column 8"));
        assert!(parse("{'a' 1}").unwrap_err().contains("expected ':'"));
        assert!(parse("'open").unwrap_err().contains("unterminated"));
        assert!(parse("[1, nul]")
            .unwrap_err()
            .contains("unknown name \"nul\" at column 5"));
        assert!(parse("1 2").unwrap_err().contains("trailing"));
        assert!(parse("1.2.3").unwrap_err().contains("malformed number"));
    }
}
