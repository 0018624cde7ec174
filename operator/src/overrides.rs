//! The pod-template escape hatch: merging a user's partial PodTemplateSpec over the built one.
//!
//! Objects merge key by key; lists whose items all carry a `name` (containers, volumes, env,
//! ports, volume mounts, ...) merge item by item on that name, new names being appended; any other
//! list or scalar is replaced; `null` removes the field. Pure: no I/O.

use serde_json::Value;

/// Merges `patch` over `base` in place.
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    base.remove(key);
                } else if let Some(existing) = base.get_mut(key) {
                    merge(existing, value);
                } else {
                    base.insert(key.clone(), value.clone());
                }
            }
        }
        (Value::Array(base), Value::Array(patch)) if all_named(base) && all_named(patch) => {
            for item in patch {
                let name = item.get("name");
                match base.iter_mut().find(|b| b.get("name") == name) {
                    Some(existing) => merge(existing, item),
                    None => base.push(item.clone()),
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

fn all_named(items: &[Value]) -> bool {
    items
        .iter()
        .all(|item| item.get("name").is_some_and(Value::is_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_keep_unmentioned_fields() {
        let mut base = json!({"spec": {"containers": [
            {"name": "peer", "image": "a", "args": ["run"]},
            {"name": "sidecar", "image": "s"}
        ]}});
        merge(
            &mut base,
            &json!({"spec": {"containers": [{"name": "peer", "image": "b"}]}}),
        );
        assert_eq!(
            base,
            json!({"spec": {"containers": [
                {"name": "peer", "image": "b", "args": ["run"]},
                {"name": "sidecar", "image": "s"}
            ]}})
        );
    }

    #[test]
    fn new_named_items_are_appended_and_null_removes() {
        let mut base =
            json!({"metadata": {"labels": {"a": "1"}}, "spec": {"volumes": [{"name": "x"}]}});
        merge(
            &mut base,
            &json!({"metadata": {"labels": {"a": null, "b": "2"}}, "spec": {"volumes": [{"name": "y"}]}}),
        );
        assert_eq!(
            base,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"volumes": [{"name": "x"}, {"name": "y"}]}})
        );
    }

    #[test]
    fn unnamed_lists_and_scalars_are_replaced() {
        let mut base = json!({"spec": {"tolerations": [{"key": "a"}], "priority": 1}});
        merge(
            &mut base,
            &json!({"spec": {"tolerations": [{"key": "b"}], "priority": 2}}),
        );
        assert_eq!(
            base,
            json!({"spec": {"tolerations": [{"key": "b"}], "priority": 2}})
        );
    }
}
