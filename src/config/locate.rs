//! Finds where a value sits in a JSON text, so that errors found after parsing (a duplicate
//! ID, a bad address) still point at `file:line:col`. Only runs on text serde_json accepted.

/// One step of a path into a JSON document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// 1-based line and column of the value at `path`, or of the deepest part of the path that
/// exists (so a missing key points at its object).
pub fn locate(text: &str, path: &[Step]) -> (usize, usize) {
    let b = text.as_bytes();
    let mut pos = skip_ws(b, 0);
    for step in path {
        match (step, b.get(pos)) {
            (Step::Key(k), Some(b'{')) => match find_key(b, pos, k) {
                Some(p) => pos = p,
                None => break,
            },
            (Step::Index(i), Some(b'[')) => match find_index(b, pos, *i) {
                Some(p) => pos = p,
                None => break,
            },
            _ => break,
        }
    }
    line_col(text, pos)
}

pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn skip_ws(b: &[u8], mut p: usize) -> usize {
    while p < b.len() && b[p].is_ascii_whitespace() {
        p += 1;
    }
    p
}

/// Position just after the string starting at `p` (which is a `"`), and its raw content.
fn string_end(b: &[u8], p: usize) -> Option<(usize, &[u8])> {
    let mut q = p + 1;
    while q < b.len() {
        match b[q] {
            b'\\' => q += 2,
            b'"' => return Some((q + 1, &b[p + 1..q])),
            _ => q += 1,
        }
    }
    None
}

/// Position just after the value starting at `p`.
fn value_end(b: &[u8], p: usize) -> Option<usize> {
    match *b.get(p)? {
        b'"' => string_end(b, p).map(|(e, _)| e),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut q = p;
            while q < b.len() {
                match b[q] {
                    b'"' => {
                        q = string_end(b, q)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(q + 1);
                        }
                    }
                    _ => {}
                }
                q += 1;
            }
            None
        }
        _ => {
            let mut q = p;
            while q < b.len() && !matches!(b[q], b',' | b'}' | b']') && !b[q].is_ascii_whitespace()
            {
                q += 1;
            }
            Some(q)
        }
    }
}

fn find_key(b: &[u8], open: usize, key: &str) -> Option<usize> {
    let mut p = skip_ws(b, open + 1);
    while b.get(p) == Some(&b'"') {
        let (after, raw) = string_end(b, p)?;
        p = skip_ws(b, after);
        if b.get(p) != Some(&b':') {
            return None;
        }
        p = skip_ws(b, p + 1);
        if raw == key.as_bytes() {
            return Some(p);
        }
        p = skip_ws(b, value_end(b, p)?);
        if b.get(p) == Some(&b',') {
            p = skip_ws(b, p + 1);
        }
    }
    None
}

fn find_index(b: &[u8], open: usize, index: usize) -> Option<usize> {
    let mut p = skip_ws(b, open + 1);
    for _ in 0..index {
        if b.get(p) == Some(&b']') {
            return None;
        }
        p = skip_ws(b, value_end(b, p)?);
        if b.get(p) != Some(&b',') {
            return None;
        }
        p = skip_ws(b, p + 1);
    }
    (b.get(p) != Some(&b']')).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Step {
        Step::Key(s.into())
    }

    #[test]
    fn finds_nested_keys_and_indices() {
        let text = "{\n  \"a\": {\"x\": \"}\\\"\"},\n  \"services\": [\n    {\"id\": 1},\n    {\"name\": \"web\", \"port\": 80}\n  ]\n}";
        assert_eq!(
            locate(text, &[k("services"), Step::Index(1), k("port")]),
            (5, 29)
        );
        assert_eq!(
            locate(text, &[k("services"), Step::Index(0), k("id")]),
            (4, 12)
        );
        assert_eq!(locate(text, &[k("a"), k("x")]), (2, 14));
        assert_eq!(locate(text, &[k("missing")]), (1, 1));
        assert_eq!(locate(text, &[k("services"), Step::Index(7)]), (3, 15));
    }
}
