//! Merging of normalized compose models, per the Compose Specification's merge rules: used
//! for several `-f` files, the override file, and `extends`.
//!
//! Mappings merge key by key (the override wins for scalars), except `logging` (replaced
//! whole when the driver changes) and each entry of `ulimits` (replaced whole). Sequences
//! are appended without duplicates, except: `command`, `entrypoint` and `healthcheck.test`
//! are replaced whole; `volumes` are unique by `target`, `secrets` and `configs` by `target` (else
//! `source`), `ports` by their whole entry, `devices` by the container path. Because every
//! input is already normalized, `environment`, `labels`, `depends_on`, `networks` are maps
//! and merge as such.

use serde_json::{Map, Value};

/// Fields whose value replaces the base instead of merging.
const REPLACE: &[&str] = &["command", "entrypoint", "test"];

fn key_of(field: &str, item: &Value) -> Option<Value> {
    match field {
        "volumes" | "devices" => item.get("target").cloned(),
        "secrets" | "configs" => item
            .get("target")
            .cloned()
            .or_else(|| item.get("source").cloned()),
        _ => None,
    }
}

/// Merge `over` onto `base`; `field` is the key `base` sits under (for the list rules).
pub fn merge_value(base: &mut Value, over: Value, field: &str) {
    if REPLACE.contains(&field) {
        *base = over;
        return;
    }
    // compose-go's mergeLogging: options only merge when the driver stays the same (or one
    // side names none); another driver's options would be refused by the new driver.
    if field == "logging" {
        let driver = |v: &Value| v.get("driver").and_then(Value::as_str).map(str::to_string);
        if let (Some(b), Some(o)) = (driver(base), driver(&over)) {
            if b != o {
                *base = over;
                return;
            }
        }
    }
    // compose-go's mergeUlimit: each limit is replaced whole (`nofile: 2048` over
    // `{soft, hard}`, or a new `{soft, hard}` pair).
    if field == "ulimits" {
        if let (Value::Object(b), Value::Object(o)) = (&mut *base, &over) {
            for (k, v) in o {
                b.insert(k.clone(), v.clone());
            }
            return;
        }
    }
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => merge_map(b, o),
        (Value::Array(b), Value::Array(o)) => {
            for item in o {
                match key_of(field, &item) {
                    Some(k) => {
                        if let Some(pos) =
                            b.iter().position(|x| key_of(field, x).as_ref() == Some(&k))
                        {
                            b[pos] = item;
                        } else {
                            b.push(item);
                        }
                    }
                    None => {
                        if !b.contains(&item) {
                            b.push(item);
                        }
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Merge map `over` into `base` key by key.
pub fn merge_map(base: &mut Map<String, Value>, over: Map<String, Value>) {
    for (k, v) in over {
        match base.get_mut(&k) {
            // `null` in an override (e.g. `networks: {front: }`) does not erase a definition.
            Some(b) if !v.is_null() => merge_value(b, v, &k),
            Some(_) => {}
            None => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_rules() {
        let mut base = json!({
            "image": "a",
            "command": ["x", "y"],
            "environment": {"A": "1", "B": "2"},
            "ports": [{"target": 80}],
            "volumes": [{"type": "volume", "source": "d", "target": "/d"}],
            "healthcheck": {"test": ["CMD", "a"], "interval": "1s"},
            "dns": ["1.1.1.1"],
        });
        let over = json!({
            "image": "b",
            "command": ["z"],
            "environment": {"B": "3", "C": "4"},
            "ports": [{"target": 80}, {"target": 81}],
            "volumes": [{"type": "bind", "source": "/h", "target": "/d"}],
            "healthcheck": {"test": ["CMD", "b"]},
            "dns": ["1.1.1.1", "8.8.8.8"],
        });
        merge_value(&mut base, over, "");
        assert_eq!(base["image"], "b");
        assert_eq!(base["command"], json!(["z"]));
        assert_eq!(base["environment"], json!({"A": "1", "B": "3", "C": "4"}));
        assert_eq!(base["ports"], json!([{"target": 80}, {"target": 81}]));
        assert_eq!(
            base["volumes"],
            json!([{"type": "bind", "source": "/h", "target": "/d"}])
        );
        assert_eq!(
            base["healthcheck"],
            json!({"test": ["CMD", "b"], "interval": "1s"})
        );
        assert_eq!(base["dns"], json!(["1.1.1.1", "8.8.8.8"]));
    }

    #[test]
    fn logging_and_ulimits() {
        let mut base = json!({
            "logging": {"driver": "json-file", "options": {"max-size": "1m"}},
            "ulimits": {"nofile": {"soft": 1, "hard": 2}, "nproc": 5},
        });
        merge_value(
            &mut base,
            json!({
                "logging": {"driver": "syslog", "options": {"tag": "x"}},
                "ulimits": {"nofile": {"soft": 3}},
            }),
            "",
        );
        assert_eq!(
            base["logging"],
            json!({"driver": "syslog", "options": {"tag": "x"}})
        );
        assert_eq!(base["ulimits"], json!({"nofile": {"soft": 3}, "nproc": 5}));
        // Same driver (or none named): options merge.
        merge_value(
            &mut base,
            json!({"logging": {"options": {"mode": "non-blocking"}}}),
            "",
        );
        assert_eq!(
            base["logging"]["options"],
            json!({"tag": "x", "mode": "non-blocking"})
        );
    }
}
