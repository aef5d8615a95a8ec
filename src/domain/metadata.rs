//! User and app metadata: JSON objects with upstream's merge rule.

use serde_json::{Map, Value};

/// A metadata object. `None` is the "never set" state upstream serialises as `null`.
pub type Metadata = Option<Map<String, Value>>;

/// Largest serialised size of one metadata object; beyond it updates are refused (422).
/// Every access token carries both objects, and the body limit alone would let repeated
/// merges grow them without bound.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Whether a metadata object is larger than [`MAX_METADATA_BYTES`] once serialised.
#[must_use]
pub fn too_large(m: &Metadata) -> bool {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    serde_json::to_writer(&mut c, m).is_err() || c.0 > MAX_METADATA_BYTES
}

/// Applies upstream's merge rule (API.md 4.22): when nothing is stored the update becomes
/// the stored map as is; otherwise each key is set, and keys whose value is JSON `null`
/// are removed.
pub fn merge(stored: &mut Metadata, update: Map<String, Value>) {
    match stored {
        None => *stored = Some(update),
        Some(map) => {
            for (k, v) in update {
                if v.is_null() {
                    map.remove(&k);
                } else {
                    map.insert(k, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn merge_into_nothing_takes_the_update_as_is() {
        let mut m: Metadata = None;
        merge(&mut m, obj(json!({})));
        assert_eq!(m, Some(Map::new()));
        let mut m: Metadata = None;
        merge(&mut m, obj(json!({"a": null})));
        assert_eq!(m, Some(obj(json!({"a": null}))));
    }

    #[test]
    fn merge_sets_keys_and_null_removes_them() {
        let mut m: Metadata = Some(Map::new());
        merge(&mut m, obj(json!({"foo": "bar"})));
        assert_eq!(m, Some(obj(json!({"foo": "bar"}))));
        merge(&mut m, obj(json!({"foo": null, "x": 1})));
        assert_eq!(m, Some(obj(json!({"x": 1}))));
    }
}
