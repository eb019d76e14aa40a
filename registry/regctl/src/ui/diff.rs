//! What a change did to a tenant's documents: the JSON pointers it changed,
//! each with its value before and after. Objects are compared key by key;
//! arrays and scalars whole (an array's items have no names to diff by).
//! One walk over both documents: time linear in their size.

use serde::Serialize;
use serde_json::Value;

/// The most changes listed for one history entry; the rest are counted.
pub(super) const CHANGES_MAX: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Change {
    /// `config`, `theme` or `integrations`.
    pub document: &'static str,
    /// An RFC 6901 pointer into the document; empty for the whole document.
    pub pointer: String,
    /// Absent: the key did not exist before (or does not after).
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The changes in `document` between `before` and `after` (JSON texts; a
/// document that is absent or not JSON counts as `{}`), appended to `out`
/// up to [`CHANGES_MAX`]; returns how many there were in all.
pub(super) fn document(
    document: &'static str,
    before: Option<&str>,
    after: Option<&str>,
    out: &mut Vec<Change>,
) -> usize {
    let parse = |text: Option<&str>| {
        text.and_then(|text| serde_json::from_str::<Value>(text).ok())
            .unwrap_or_else(|| Value::Object(Default::default()))
    };
    let mut found = 0;
    walk(document, &mut String::new(), Some(&parse(before)), Some(&parse(after)), out, &mut found);
    found
}

fn walk(
    document: &'static str,
    pointer: &mut String,
    before: Option<&Value>,
    after: Option<&Value>,
    out: &mut Vec<Change>,
    found: &mut usize,
) {
    if let (Some(Value::Object(before)), Some(Value::Object(after))) = (before, after) {
        // serde_json's maps are ordered: a merge of the two key lists.
        let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let length = pointer.len();
            pointer.push('/');
            pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            walk(document, pointer, before.get(key), after.get(key), out, found);
            pointer.truncate(length);
        }
        return;
    }
    if before == after {
        return;
    }
    *found += 1;
    if out.len() < CHANGES_MAX {
        out.push(Change { document, pointer: pointer.clone(), before: before.cloned(), after: after.cloned() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn changes(before: &str, after: &str) -> Vec<(String, Option<Value>, Option<Value>)> {
        let mut out = Vec::new();
        document("theme", Some(before), Some(after), &mut out);
        out.into_iter().map(|change| (change.pointer, change.before, change.after)).collect()
    }

    #[test]
    fn objects_by_key_arrays_and_scalars_whole() {
        let before = r##"{"colors":{"primary":"#0a6","text":"#111"},"logo":"a.png","tags":[1,2],"old":true}"##;
        let after = r##"{"colors":{"primary":"#c00","text":"#111"},"logo":"a.png","tags":[1,3],"new/key":1}"##;
        assert_eq!(
            changes(before, after),
            [
                ("/colors/primary".to_owned(), Some(json!("#0a6")), Some(json!("#c00"))),
                ("/new~1key".to_owned(), None, Some(json!(1))),
                ("/old".to_owned(), Some(json!(true)), None),
                ("/tags".to_owned(), Some(json!([1, 2])), Some(json!([1, 3]))),
            ]
        );
        assert!(changes(before, before).is_empty());
    }

    #[test]
    fn a_document_that_appears_and_a_type_change() {
        let mut out = Vec::new();
        assert_eq!(document("config", None, Some(r#"{"a":{"b":1}}"#), &mut out), 1);
        assert_eq!(out[0].pointer, "/a");
        assert_eq!(
            changes(r#"{"a":{"b":1}}"#, r#"{"a":[1]}"#),
            [("/a".to_owned(), Some(json!({"b":1})), Some(json!([1])))]
        );
    }

    #[test]
    fn changes_beyond_the_limit_are_counted_not_listed() {
        let after: serde_json::Map<String, Value> =
            (0..CHANGES_MAX + 5).map(|n| (format!("k{n:04}"), json!(n))).collect();
        let mut out = Vec::new();
        let found = document("config", Some("{}"), Some(&Value::Object(after).to_string()), &mut out);
        assert_eq!((found, out.len()), (CHANGES_MAX + 5, CHANGES_MAX));
    }
}
