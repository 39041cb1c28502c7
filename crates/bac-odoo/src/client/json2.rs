//! Odoo 19's External JSON-2 API as request values: `POST <url>/json/2/<model>/<method>` with
//! `Authorization: bearer <api key>`, `X-Odoo-Database` and the method's arguments by name.
//! The rest of bac-odoo speaks `execute_kw` (positional `args` + `kwargs`); [`named_args`]
//! translates one into the other, so callers never know which protocol a connection uses.
use http::Method;
use serde_json::{Map, Value};

use bac_runtime::upstream::UpstreamRequest;

/// The positional parameters of the ORM methods bac-odoo (and `ExecuteKw`) calls, in the
/// order `execute_kw` binds them. A method not listed here is a record method (`action_post`,
/// `action_confirm`...): its only positional argument is the ids.
fn positional(method: &str) -> &'static [&'static str] {
    match method {
        "search_read" => &["domain", "fields", "offset", "limit", "order"],
        "search" => &["domain", "offset", "limit", "order"],
        "search_count" => &["domain", "limit"],
        "read" => &["ids", "fields", "load"],
        "create" => &["vals_list"],
        "write" => &["ids", "vals"],
        "fields_get" => &["allfields", "attributes"],
        "name_search" => &["name", "domain", "operator", "limit"],
        "default_get" => &["fields"],
        // unlink, exists and record methods (action_post...)
        _ => &["ids"],
    }
}

/// The JSON-2 body of `model.method(*args, **kwargs)`: positional arguments by name, kwargs
/// merged. An argument given both ways, or more positional arguments than the method has,
/// is refused with a message naming it.
pub fn named_args(
    method: &str,
    args: Vec<Value>,
    kwargs: Value,
) -> Result<Map<String, Value>, String> {
    let names = positional(method);
    if args.len() > names.len() {
        return Err(format!(
            "{method} takes at most {} positional argument{} ({}), {} given",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            args.len()
        ));
    }
    let mut body = Map::new();
    for (name, value) in names.iter().zip(args) {
        // `create` accepts one dict as well as a list of them; JSON-2 wants the list.
        let value = match (*name, value) {
            ("vals_list", v @ Value::Object(_)) => Value::Array(vec![v]),
            (_, v) => v,
        };
        body.insert((*name).to_string(), value);
    }
    match kwargs {
        Value::Null => {}
        Value::Object(kw) => {
            for (k, v) in kw {
                if body.contains_key(&k) {
                    return Err(format!("{method} got multiple values for argument '{k}'"));
                }
                body.insert(k, v);
            }
        }
        other => return Err(format!("kwargs must be an object, not {other}")),
    }
    Ok(body)
}

/// `POST <url>/json/2/<model>/<method>` with the named arguments as its JSON body.
pub fn request(
    url: &str,
    database: &str,
    api_key: &str,
    model: &str,
    method: &str,
    body: &Map<String, Value>,
    idempotent: bool,
) -> UpstreamRequest {
    UpstreamRequest {
        method: Method::POST,
        url: format!(
            "{}/json/2/{}/{}",
            url.trim_end_matches('/'),
            path_segment(model),
            path_segment(method)
        ),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), format!("bearer {api_key}")),
            ("x-odoo-database".into(), database.to_string()),
        ],
        body: serde_json::to_vec(body).ok(),
        idempotent,
        operation: format!("{model}/{method}"),
        // Odoo publishes no quota: the client's own, per server.
        quota: None,
    }
}

/// Model and method names are dotted identifiers; anything else is percent-encoded so it
/// cannot change the path.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positional_arguments_become_named_ones() {
        let b = named_args(
            "search_read",
            vec![json!([["name", "=", "x"]])],
            json!({"fields": ["name"], "limit": 5, "order": "id desc"}),
        )
        .unwrap();
        assert_eq!(
            Value::Object(b),
            json!({"domain": [["name", "=", "x"]], "fields": ["name"], "limit": 5, "order": "id desc"})
        );
        let b = named_args("search", vec![json!([])], json!({"order": "id"})).unwrap();
        assert_eq!(Value::Object(b), json!({"domain": [], "order": "id"}));
        let b = named_args("search_count", vec![json!([["a", "=", 1]])], json!({})).unwrap();
        assert_eq!(Value::Object(b), json!({"domain": [["a", "=", 1]]}));
        let b = named_args("read", vec![json!([1, 2])], json!({"fields": ["name"]})).unwrap();
        assert_eq!(Value::Object(b), json!({"ids": [1, 2], "fields": ["name"]}));
        let b = named_args("read", vec![json!([1]), json!(["name"])], Value::Null).unwrap();
        assert_eq!(Value::Object(b), json!({"ids": [1], "fields": ["name"]}));
        let b = named_args("write", vec![json!([3]), json!({"name": "y"})], json!({})).unwrap();
        assert_eq!(Value::Object(b), json!({"ids": [3], "vals": {"name": "y"}}));
        let b = named_args("unlink", vec![json!([3])], json!({})).unwrap();
        assert_eq!(Value::Object(b), json!({"ids": [3]}));
        let b = named_args("action_post", vec![json!([9])], json!({})).unwrap();
        assert_eq!(Value::Object(b), json!({"ids": [9]}));
        let b = named_args("fields_get", vec![], json!({"attributes": ["type"]})).unwrap();
        assert_eq!(Value::Object(b), json!({"attributes": ["type"]}));
    }

    #[test]
    fn create_takes_a_list_of_vals() {
        let b = named_args("create", vec![json!({"name": "a"})], json!({})).unwrap();
        assert_eq!(Value::Object(b), json!({"vals_list": [{"name": "a"}]}));
        let b = named_args(
            "create",
            vec![json!([{"name": "a"}, {"name": "b"}])],
            json!({}),
        )
        .unwrap();
        assert_eq!(b["vals_list"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn conflicts_and_extra_arguments_are_refused() {
        let e = named_args("read", vec![json!([1])], json!({"ids": [2]})).unwrap_err();
        assert!(e.contains("multiple values for argument 'ids'"), "{e}");
        let e = named_args("unlink", vec![json!([1]), json!(2)], json!({})).unwrap_err();
        assert!(e.contains("at most 1 positional argument"), "{e}");
        let e = named_args("read", vec![], json!([1])).unwrap_err();
        assert!(e.contains("kwargs must be an object"), "{e}");
    }

    #[test]
    fn the_request_carries_bearer_database_and_named_body() {
        let body = named_args("search_count", vec![json!([])], json!({})).unwrap();
        let req = request(
            "http://odoo:8069/",
            "prod",
            "k3y",
            "crm.lead",
            "search_count",
            &body,
            true,
        );
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.url, "http://odoo:8069/json/2/crm.lead/search_count");
        assert!(req
            .headers
            .contains(&("authorization".into(), "bearer k3y".into())));
        assert!(req
            .headers
            .contains(&("x-odoo-database".into(), "prod".into())));
        assert!(req
            .headers
            .contains(&("content-type".into(), "application/json".into())));
        let sent: Value = serde_json::from_slice(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(sent, json!({"domain": []}));
        assert!(req.idempotent);
        assert_eq!(req.operation, "crm.lead/search_count");
        // Nothing but a dotted identifier reaches the path.
        let req = request(
            "http://o",
            "d",
            "k",
            "crm.lead/../x",
            "a b",
            &Map::new(),
            false,
        );
        assert_eq!(req.url, "http://o/json/2/crm.lead%2F..%2Fx/a%20b");
    }
}
