//! Business methods of the served models (`sale.order.action_confirm`,
//! `account.move.action_post`...) and the deletion rules Odoo enforces on them.
//! They are record methods: `call_kw` passes the record ids as first argument.

use serde_json::{json, Value};

use super::error::{OdooError, OdooResult};
use super::store::{Row, Store};

/// The business methods of `model`.
pub fn methods(model: &str) -> &'static [&'static str] {
    match model {
        "sale.order" => &[
            "action_confirm",
            "action_cancel",
            "action_draft",
            "action_quotation_sent",
        ],
        "account.move" => &["action_post", "button_draft", "button_cancel"],
        _ => &[],
    }
}

/// Whether `method` is a business method of `model`.
pub fn exists(model: &str, method: &str) -> bool {
    methods(model).contains(&method)
}

fn field_str<'a>(store: &'a Store, model: &str, id: i64, field: &str) -> &'a str {
    store
        .row(model, id)
        .and_then(|r| r.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Calls the business method `method` of `model` on `ids` (existing records only).
pub fn call(
    store: &mut Store,
    model: &str,
    method: &str,
    ids: &[i64],
    uid: i64,
) -> OdooResult<Value> {
    let ids = store.exists(model, ids)?;
    match (model, method) {
        ("sale.order", "action_confirm") => {
            let wrong: Vec<&str> = ids
                .iter()
                .filter(|id| !matches!(field_str(store, model, **id, "state"), "draft" | "sent"))
                .map(|id| field_str(store, model, *id, "name"))
                .collect();
            if !wrong.is_empty() {
                return Err(OdooError::user_error(format!(
                    "The following orders are not in a state requiring confirmation: {}",
                    wrong.join(", ")
                )));
            }
            let now = super::store::now_string();
            store.write(
                model,
                &ids,
                &json!({"state": "sale", "date_order": now}),
                uid,
            )?;
            Ok(json!(true))
        }
        ("sale.order", "action_cancel") => {
            store.write(model, &ids, &json!({"state": "cancel"}), uid)?;
            Ok(json!(true))
        }
        ("sale.order", "action_draft") => {
            let ids: Vec<i64> = ids
                .into_iter()
                .filter(|id| matches!(field_str(store, model, *id, "state"), "cancel" | "sent"))
                .collect();
            store.write(model, &ids, &json!({"state": "draft"}), uid)?;
            Ok(json!(true))
        }
        ("sale.order", "action_quotation_sent") => {
            let ids: Vec<i64> = ids
                .into_iter()
                .filter(|id| field_str(store, model, *id, "state") == "draft")
                .collect();
            store.write(model, &ids, &json!({"state": "sent"}), uid)?;
            Ok(json!(true))
        }
        ("account.move", "action_post") => {
            post_moves(store, &ids, uid)?;
            // account.move.action_post() returns False
            Ok(json!(false))
        }
        ("account.move", "button_draft") => {
            store.write(model, &ids, &json!({"state": "draft"}), uid)?;
            Ok(Value::Null)
        }
        ("account.move", "button_cancel") => {
            if let Some(id) = ids
                .iter()
                .find(|id| field_str(store, model, **id, "state") != "draft")
            {
                return Err(OdooError::user_error(format!(
                    "Only draft journal entries can be cancelled. ({})",
                    field_str(store, model, *id, "name")
                )));
            }
            store.write(model, &ids, &json!({"state": "cancel"}), uid)?;
            Ok(Value::Null)
        }
        _ => Err(OdooError::attribute_error(format!(
            "The method '{method}' does not exist on the model '{model}'"
        ))),
    }
}

/// `account.move._post()`: checks, then number, invoice date and state.
fn post_moves(store: &mut Store, ids: &[i64], uid: i64) -> OdooResult<()> {
    const MODEL: &str = "account.move";
    let lines = store.children_index("account.move.line", "move_id");
    for &id in ids {
        let name = field_str(store, MODEL, id, "name").to_owned();
        let move_type = field_str(store, MODEL, id, "move_type").to_owned();
        match field_str(store, MODEL, id, "state") {
            "posted" => {
                return Err(OdooError::user_error(format!(
                    "The entry {name} (id {id}) is already posted."
                )))
            }
            "cancel" => {
                return Err(OdooError::user_error(format!(
                    "The entry {name} (id {id}) is cancelled: reset it to draft before posting it."
                )))
            }
            _ => {}
        }
        let is_invoice = move_type != "entry";
        let has_partner = store
            .row(MODEL, id)
            .and_then(|r| r.get("partner_id"))
            .is_some_and(|p| p.as_i64().is_some());
        if is_invoice && !has_partner {
            let (field, document) = match move_type.as_str() {
                "out_invoice" => ("Customer", "Customer Invoice"),
                "out_refund" => ("Customer", "Customer Credit Note"),
                "out_receipt" => ("Customer", "Sales Receipt"),
                "in_invoice" => ("Vendor", "Vendor Bill"),
                "in_refund" => ("Vendor", "Vendor Credit Note"),
                _ => ("Vendor", "Purchase Receipt"),
            };
            return Err(OdooError::user_error(format!(
                "The field '{field}' is required, please complete it to validate the {document}."
            )));
        }
        if lines.get(&id).is_none_or(Vec::is_empty) {
            return Err(OdooError::user_error(
                "You need to add a line before posting.",
            ));
        }
    }
    let today = super::store::now_string()[..10].to_owned();
    for &id in ids {
        let mut vals = serde_json::Map::new();
        vals.insert("state".into(), json!("posted"));
        let is_invoice = field_str(store, MODEL, id, "move_type") != "entry";
        let invoice_date = field_str(store, MODEL, id, "invoice_date").to_owned();
        if is_invoice && invoice_date.is_empty() {
            vals.insert("invoice_date".into(), json!(today));
        }
        if matches!(field_str(store, MODEL, id, "name"), "" | "/") {
            let prefix = match field_str(store, MODEL, id, "move_type") {
                "out_invoice" | "out_receipt" => "INV",
                "out_refund" => "RINV",
                "in_invoice" | "in_receipt" => "BILL",
                "in_refund" => "RBILL",
                _ => "MISC",
            };
            let date = if invoice_date.is_empty() {
                today.clone()
            } else {
                invoice_date
            };
            let prefix = format!("{prefix}/{}/", &date[..4]);
            let n = store.next_sequence(&prefix);
            vals.insert("name".into(), json!(format!("{prefix}{n:05}")));
        }
        store.write(MODEL, &[id], &Value::Object(vals), uid)?;
    }
    Ok(())
}

/// The SQL constraints of the served models, on a row about to be stored (Odoo reports a
/// violated one as a `ValidationError` with the constraint's message).
pub fn check_row(model: &str, row: &Row) -> OdooResult<()> {
    let set = |f: &str| {
        row.get(f)
            .is_some_and(|v| !v.is_null() && *v != Value::Bool(false))
    };
    // sale.order.line's `accountable_required_fields`:
    // CHECK(display_type IS NOT NULL OR (product_id IS NOT NULL AND product_uom IS NOT NULL))
    if model == "sale.order.line" && !set("display_type") && !set("product_id") {
        return Err(OdooError::validation(
            "Missing required fields on accountable sale order line.",
        ));
    }
    Ok(())
}

/// The `@api.ondelete` rules of the served models.
pub fn check_unlink(store: &Store, model: &str, ids: &[i64]) -> OdooResult<()> {
    let ids = store.exists(model, ids)?;
    let state = |id: i64| field_str(store, model, id, "state");
    let refused = match model {
        "sale.order" => ids
            .iter()
            .any(|id| !matches!(state(*id), "draft" | "cancel"))
            .then_some(
                "You can not delete a sent quotation or a confirmed sales order. You must first \
                 cancel it.",
            ),
        "sale.order.line" => ids
            .iter()
            .any(|id| {
                store
                    .row(model, *id)
                    .and_then(|r| r.get("order_id"))
                    .and_then(Value::as_i64)
                    .is_some_and(|order| field_str(store, "sale.order", order, "state") == "sale")
            })
            .then_some(
                "Once a sales order is confirmed, you can't remove one of its lines (we need to \
                 track if something gets invoiced or delivered).\nSet the quantity to 0 instead.",
            ),
        "account.move" => ids
            .iter()
            .any(|id| state(*id) == "posted")
            .then_some("You cannot delete an entry which has been posted once."),
        _ => None,
    };
    match refused {
        Some(message) => Err(OdooError::user_error(message)),
        None => Ok(()),
    }
}
