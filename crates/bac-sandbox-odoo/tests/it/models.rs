//! The ERP models (sale orders, invoices, products, stock, employees, partners)
//! through `/jsonrpc`: one2many commands, computed totals, business methods,
//! deletion rules, version differences and `write_date` semantics.

use bac_sandbox_odoo::OdooSandboxConfig;
use serde_json::{json, Value};

use crate::support::{assert_odoo_error, spawn, spawn_with};

async fn product(sb: &crate::support::Sandbox, name: &str, price: f64) -> i64 {
    sb.ok(
        "product.product",
        "create",
        json!([{"name": name, "list_price": price, "default_code": name.to_uppercase()}]),
        json!({}),
    )
    .await
    .as_i64()
    .unwrap()
}

async fn partner(sb: &crate::support::Sandbox, name: &str) -> i64 {
    sb.ok(
        "res.partner",
        "create",
        json!([{"name": name, "ref": format!("intent-{name}")}]),
        json!({}),
    )
    .await
    .as_i64()
    .unwrap()
}

#[tokio::test]
async fn sale_order_with_lines() {
    let sb = spawn().await;
    let chair = product(&sb, "chair", 40.0).await;
    let desk = product(&sb, "desk", 250.0).await;
    let customer = partner(&sb, "Acme").await;
    let order = sb
        .ok(
            "sale.order",
            "create",
            json!([{
                "partner_id": customer,
                "client_order_ref": "intent-123",
                "order_line": [
                    [0, 0, {"product_id": chair, "product_uom_qty": 4}],
                    [0, 0, {"product_id": desk, "product_uom_qty": 1, "price_unit": 200.0}],
                ],
            }]),
            json!({}),
        )
        .await;
    let order_id = order.as_i64().unwrap();
    let rec = &sb
        .ok(
            "sale.order",
            "read",
            json!([
                [order_id],
                [
                    "name",
                    "state",
                    "partner_id",
                    "order_line",
                    "amount_total",
                    "client_order_ref",
                    "date_order"
                ]
            ]),
            json!({}),
        )
        .await[0];
    assert_eq!(rec["name"], "S00001");
    assert_eq!(rec["state"], "draft");
    assert_eq!(rec["partner_id"], json!([customer, "Acme"]));
    assert_eq!(rec["client_order_ref"], "intent-123");
    assert_eq!(rec["amount_total"], 360.0);
    assert_eq!(rec["date_order"].as_str().unwrap().len(), 19);
    let lines: Vec<i64> = rec["order_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let read = sb
        .ok(
            "sale.order.line",
            "read",
            json!([
                lines,
                [
                    "order_id",
                    "product_id",
                    "name",
                    "product_uom_qty",
                    "price_unit",
                    "price_subtotal"
                ]
            ]),
            json!({}),
        )
        .await;
    // price and description come from the product when not given
    assert_eq!(read[0]["order_id"], json!([order_id, "S00001"]));
    assert_eq!(read[0]["name"], "[CHAIR] chair");
    assert_eq!(read[0]["price_unit"], 40.0);
    assert_eq!(read[0]["price_subtotal"], 160.0);
    assert_eq!(read[1]["price_unit"], 200.0);

    // (1, id, vals) update, (0, 0, vals) create, (2, id) delete in one write
    sb.ok(
        "sale.order",
        "write",
        json!([[order_id], {"order_line": [
            [1, lines[0], {"product_uom_qty": 10}],
            [2, lines[1], 0],
            [0, 0, {"product_id": chair, "name": "Delivery", "price_unit": 15.5}],
            [0, 0, {"display_type": "line_note", "name": "Delivered on Monday"}],
        ]}]),
        json!({}),
    )
    .await;
    // Every ordinary line needs a product (sale.order.line's accountable_required_fields);
    // a refused write changes nothing.
    let err = sb
        .err(
            "sale.order",
            "write",
            json!([[order_id], {"order_line": [[0, 0, {"name": "Just words", "price_unit": 1}]]}]),
            json!({}),
        )
        .await;
    assert_eq!(
        err["data"]["name"], "odoo.exceptions.ValidationError",
        "{err}"
    );
    assert_eq!(
        err["data"]["message"],
        "Missing required fields on accountable sale order line."
    );
    let err = sb
        .err(
            "sale.order.line",
            "write",
            json!([[lines[0]], {"product_id": false}]),
            json!({}),
        )
        .await;
    assert_eq!(
        err["data"]["name"], "odoo.exceptions.ValidationError",
        "{err}"
    );
    let rec = &sb
        .ok(
            "sale.order",
            "read",
            json!([[order_id], ["order_line", "amount_total"]]),
            json!({}),
        )
        .await[0];
    assert_eq!(rec["amount_total"], 415.5);
    assert_eq!(
        rec["order_line"].as_array().unwrap().len(),
        3,
        "the note is a line too"
    );
    assert!(sb
        .ok(
            "sale.order.line",
            "search",
            json!([[["id", "=", lines[1]]]]),
            json!({})
        )
        .await
        .as_array()
        .unwrap()
        .is_empty());
    // a line written directly changes its order's total
    sb.ok(
        "sale.order.line",
        "write",
        json!([[lines[0]], {"price_unit": 50}]),
        json!({}),
    )
    .await;
    let total = sb
        .ok(
            "sale.order",
            "read",
            json!([[order_id], ["amount_total"]]),
            json!({}),
        )
        .await;
    assert_eq!(total[0]["amount_total"], 515.5);
    // search through the one2many
    let found = sb
        .ok(
            "sale.order",
            "search",
            json!([[["order_line.product_id", "=", chair]]]),
            json!({}),
        )
        .await;
    assert_eq!(found, json!([order_id]));
    let found = sb
        .ok(
            "sale.order",
            "search_count",
            json!([[["order_line", "=", false]]]),
            json!({}),
        )
        .await;
    assert_eq!(found, 0);

    // confirm, then the order and its lines cannot be deleted
    assert_eq!(
        sb.ok(
            "sale.order",
            "action_confirm",
            json!([[order_id]]),
            json!({})
        )
        .await,
        true
    );
    let err = sb
        .err(
            "sale.order",
            "action_confirm",
            json!([[order_id]]),
            json!({}),
        )
        .await;
    let data = assert_odoo_error(&err, "odoo.exceptions.UserError");
    assert_eq!(
        data["message"],
        "The following orders are not in a state requiring confirmation: S00001"
    );
    let err = sb
        .err("sale.order", "unlink", json!([[order_id]]), json!({}))
        .await;
    assert_odoo_error(&err, "odoo.exceptions.UserError");
    let err = sb
        .err("sale.order.line", "unlink", json!([[lines[0]]]), json!({}))
        .await;
    assert_odoo_error(&err, "odoo.exceptions.UserError");
    // a product used by a line cannot be deleted (ondelete='restrict')
    let err = sb
        .err("product.product", "unlink", json!([[chair]]), json!({}))
        .await;
    let data = assert_odoo_error(&err, "odoo.exceptions.ValidationError");
    assert!(data["message"]
        .as_str()
        .unwrap()
        .contains("sale_order_line_product_id_fkey"));
    // cancelled orders can be deleted, with their lines (ondelete='cascade')
    sb.ok(
        "sale.order",
        "action_cancel",
        json!([[order_id]]),
        json!({}),
    )
    .await;
    sb.ok("sale.order", "unlink", json!([[order_id]]), json!({}))
        .await;
    assert_eq!(
        sb.ok("sale.order.line", "search_count", json!([[]]), json!({}))
            .await,
        0
    );
    sb.ok("product.product", "unlink", json!([[chair]]), json!({}))
        .await;

    // required fields and bad commands
    let err = sb
        .err(
            "sale.order",
            "create",
            json!([{"client_order_ref": "x"}]),
            json!({}),
        )
        .await;
    let data = assert_odoo_error(&err, "odoo.exceptions.ValidationError");
    assert!(data["message"]
        .as_str()
        .unwrap()
        .contains("Field: Customer (partner_id)"));
    let err = sb
        .err(
            "sale.order",
            "create",
            json!([{"partner_id": customer, "order_line": [[0, 0, {"product_uom_qty": 1}]]}]),
            json!({}),
        )
        .await;
    let data = assert_odoo_error(&err, "odoo.exceptions.ValidationError");
    assert!(data["message"].as_str().unwrap().contains("(name)"));
    let err = sb
        .err(
            "sale.order",
            "create",
            json!([{"partner_id": customer, "order_line": [[9, 0, {}]]}]),
            json!({}),
        )
        .await;
    assert_odoo_error(&err, "builtins.ValueError");
    let err = sb
        .err(
            "sale.order",
            "create",
            json!([{"partner_id": customer, "order_line": [[1, 4242, {"name": "x"}]]}]),
            json!({}),
        )
        .await;
    assert_odoo_error(&err, "odoo.exceptions.MissingError");
    // nothing of the failed creates was kept
    assert_eq!(
        sb.ok("sale.order", "search_count", json!([[]]), json!({}))
            .await,
        0
    );
}

#[tokio::test]
async fn one2many_link_set_and_clear() {
    let sb = spawn().await;
    let customer = partner(&sb, "Globex").await;
    let item = product(&sb, "item", 1.0).await;
    let a = sb
        .ok(
            "sale.order",
            "create",
            json!([{"partner_id": customer, "order_line": [[0, 0, {"product_id": item, "name": "a1", "price_unit": 1}], [0, 0, {"product_id": item, "name": "a2", "price_unit": 2}]]}]),
            json!({}),
        )
        .await
        .as_i64()
        .unwrap();
    let b = sb
        .ok(
            "sale.order",
            "create",
            json!([{"partner_id": customer}]),
            json!({}),
        )
        .await
        .as_i64()
        .unwrap();
    let a_lines = sb
        .ok(
            "sale.order",
            "read",
            json!([[a], ["order_line"]]),
            json!({}),
        )
        .await[0]["order_line"]
        .clone();
    // (4, id) moves a line to another order: both totals follow
    sb.ok(
        "sale.order",
        "write",
        json!([[b], {"order_line": [[4, a_lines[1], 0]]}]),
        json!({}),
    )
    .await;
    let orders = sb
        .ok(
            "sale.order",
            "read",
            json!([[a, b], ["order_line", "amount_total"]]),
            json!({}),
        )
        .await;
    assert_eq!(orders[0]["order_line"], json!([a_lines[0]]));
    assert_eq!(orders[0]["amount_total"], 1.0);
    assert_eq!(orders[1]["order_line"], json!([a_lines[1]]));
    assert_eq!(orders[1]["amount_total"], 2.0);
    // (6, 0, ids) replaces the lines; the dropped ones are deleted (required inverse)
    sb.ok(
        "sale.order",
        "write",
        json!([[b], {"order_line": [[6, 0, [a_lines[0]]]]}]),
        json!({}),
    )
    .await;
    let lines = sb
        .ok(
            "sale.order.line",
            "search",
            json!([[]]),
            json!({"order": "id"}),
        )
        .await;
    assert_eq!(lines, json!([a_lines[0]]));
    // (5,) clears
    sb.ok(
        "sale.order",
        "write",
        json!([[b], {"order_line": [[5, 0, 0]]}]),
        json!({}),
    )
    .await;
    assert_eq!(
        sb.ok("sale.order.line", "search_count", json!([[]]), json!({}))
            .await,
        0
    );
    let totals = sb
        .ok(
            "sale.order",
            "read",
            json!([[a, b], ["amount_total"]]),
            json!({}),
        )
        .await;
    assert_eq!(totals[0]["amount_total"], 0.0);
    assert_eq!(totals[1]["amount_total"], 0.0);
    let fields = sb
        .ok(
            "sale.order",
            "fields_get",
            json!([["order_line"]]),
            json!({}),
        )
        .await;
    assert_eq!(fields["order_line"]["type"], "one2many");
    assert_eq!(fields["order_line"]["relation"], "sale.order.line");
    assert_eq!(fields["order_line"]["relation_field"], "order_id");
}

/// Taxes as Odoo computes them on invoice lines: the product's customer taxes unless the
/// line names its own (a many2many: ids or `(6, 0, ids)`, `(4, id)`, `(3, id)`), percent on
/// the subtotal, fixed per unit; the invoice adds them up.
#[tokio::test]
async fn invoice_line_taxes() {
    let sb = spawn().await;
    let customer = partner(&sb, "Taxed Co").await;
    let p = product(&sb, "widget", 10.0).await;
    let fields = sb
        .ok(
            "account.move.line",
            "fields_get",
            json!([["tax_ids"]]),
            json!({"attributes": ["type", "relation"]}),
        )
        .await;
    assert_eq!(
        fields["tax_ids"],
        json!({"type": "many2many", "relation": "account.tax"})
    );
    let eco = sb
        .ok(
            "account.tax",
            "create",
            json!([{"name": "Eco fee", "amount_type": "fixed", "amount": 0.5}]),
            json!({}),
        )
        .await
        .as_i64()
        .unwrap();
    let inv = sb
        .ok(
            "account.move",
            "create",
            json!([{"move_type": "out_invoice", "partner_id": customer, "invoice_line_ids": [
                [0, 0, {"product_id": p, "quantity": 2}],
                [0, 0, {"product_id": p, "quantity": 4, "tax_ids": [[6, 0, [eco]]]}],
                [0, 0, {"name": "Untaxed service", "quantity": 1, "price_unit": 7.0}],
            ]}]),
            json!({}),
        )
        .await
        .as_i64()
        .unwrap();
    let lines = sb
        .ok(
            "account.move.line",
            "search_read",
            json!([
                [["move_id", "=", inv]],
                ["tax_ids", "price_subtotal", "price_total"]
            ]),
            json!({"order": "id"}),
        )
        .await;
    assert_eq!(lines[0]["tax_ids"], json!([1]), "{lines}");
    assert_eq!(
        (
            lines[0]["price_subtotal"].as_f64(),
            lines[0]["price_total"].as_f64()
        ),
        (Some(20.0), Some(23.0))
    );
    assert_eq!(lines[1]["tax_ids"], json!([eco]));
    assert_eq!(lines[1]["price_total"], 42.0);
    // like Odoo's, journal items have no price_tax (sale order lines do)
    let err = sb
        .err(
            "account.move.line",
            "read",
            json!([[lines[0]["id"].clone()], ["price_tax"]]),
            json!({}),
        )
        .await;
    assert_eq!(err["data"]["name"], "builtins.ValueError", "{err}");
    assert_eq!(lines[2]["tax_ids"], json!([]));
    assert_eq!(lines[2]["price_total"], 7.0);
    let rec = &sb
        .ok(
            "account.move",
            "read",
            json!([[inv], ["amount_untaxed", "amount_tax", "amount_total"]]),
            json!({}),
        )
        .await[0];
    assert_eq!(
        (
            rec["amount_untaxed"].as_f64(),
            rec["amount_tax"].as_f64(),
            rec["amount_total"].as_f64()
        ),
        (Some(67.0), Some(5.0), Some(72.0))
    );
    // relative commands on write; the totals follow
    let line = lines[2]["id"].clone();
    sb.ok(
        "account.move.line",
        "write",
        json!([[line], {"tax_ids": [[4, 1], [4, eco]]}]),
        json!({}),
    )
    .await;
    sb.ok(
        "account.move.line",
        "write",
        json!([[line], {"tax_ids": [[3, eco]]}]),
        json!({}),
    )
    .await;
    let l = &sb
        .ok(
            "account.move.line",
            "read",
            json!([[line], ["tax_ids", "price_total"]]),
            json!({}),
        )
        .await[0];
    assert_eq!(
        (l["tax_ids"].clone(), l["price_total"].as_f64()),
        (json!([1]), Some(8.05))
    );
    let rec = &sb
        .ok(
            "account.move",
            "read",
            json!([[inv], ["amount_tax"]]),
            json!({}),
        )
        .await[0];
    assert_eq!(rec["amount_tax"], 6.05);
    // a tax that does not exist is the database's foreign key error
    let err = sb
        .err(
            "account.move.line",
            "write",
            json!([[line], {"tax_ids": [[6, 0, [999]]]}]),
            json!({}),
        )
        .await;
    assert_eq!(err["data"]["name"], "psycopg2.errors.ForeignKeyViolation");
}

#[tokio::test]
async fn invoices_post_and_numbering() {
    let sb = spawn().await;
    let customer = partner(&sb, "Initech").await;
    let p = product(&sb, "consulting", 100.0).await;
    let inv = sb
        .ok(
            "account.move",
            "create",
            json!([{
                "move_type": "out_invoice",
                "partner_id": customer,
                "ref": "intent-inv-1",
                "invoice_date": "2024-03-15",
                "invoice_line_ids": [[0, 0, {"product_id": p, "quantity": 3}]],
            }]),
            json!({}),
        )
        .await
        .as_i64()
        .unwrap();
    let rec = &sb
        .ok(
            "account.move",
            "read",
            json!([
                [inv],
                [
                    "name",
                    "state",
                    "move_type",
                    "amount_total",
                    "invoice_line_ids",
                    "ref"
                ]
            ]),
            json!({}),
        )
        .await[0];
    assert_eq!(rec["name"], "/");
    assert_eq!(rec["state"], "draft");
    assert_eq!(rec["move_type"], "out_invoice");
    // 3 x 100.0 plus the product's default 15 % sale tax
    assert_eq!(rec["amount_total"], 345.0);
    assert_eq!(rec["ref"], "intent-inv-1");
    assert_eq!(rec["invoice_line_ids"].as_array().unwrap().len(), 1);
    // action_post returns False, numbers the invoice in the year of its date
    assert_eq!(
        sb.ok("account.move", "action_post", json!([[inv]]), json!({}))
            .await,
        false
    );
    let rec = &sb
        .ok(
            "account.move",
            "read",
            json!([[inv], ["name", "state"]]),
            json!({}),
        )
        .await[0];
    assert_eq!(rec["name"], "INV/2024/00001");
    assert_eq!(rec["state"], "posted");
    let err = sb
        .err("account.move", "action_post", json!([[inv]]), json!({}))
        .await;
    assert_odoo_error(&err, "odoo.exceptions.UserError");
    let err = sb
        .err("account.move", "unlink", json!([[inv]]), json!({}))
        .await;
    let data = assert_odoo_error(&err, "odoo.exceptions.UserError");
    assert_eq!(
        data["message"],
        "You cannot delete an entry which has been posted once."
    );
    // posted invoices are found by state
    let posted = sb
        .ok(
            "account.move",
            "search_read",
            json!([
                [["move_type", "=", "out_invoice"], ["state", "=", "posted"]],
                ["name"]
            ]),
            json!({}),
        )
        .await;
    assert_eq!(posted, json!([{"id": inv, "name": "INV/2024/00001"}]));
    // an invoice without customer or lines cannot be posted
    let empty = sb
        .ok(
            "account.move",
            "create",
            json!([{"move_type": "out_invoice"}]),
            json!({}),
        )
        .await;
    let err = sb
        .err("account.move", "action_post", json!([[empty]]), json!({}))
        .await;
    let data = assert_odoo_error(&err, "odoo.exceptions.UserError");
    assert_eq!(
        data["message"],
        "The field 'Customer' is required, please complete it to validate the Customer Invoice."
    );
    sb.ok(
        "account.move",
        "write",
        json!([[empty], {"partner_id": customer}]),
        json!({}),
    )
    .await;
    let err = sb
        .err("account.move", "action_post", json!([[empty]]), json!({}))
        .await;
    let data = assert_odoo_error(&err, "odoo.exceptions.UserError");
    assert_eq!(data["message"], "You need to add a line before posting.");
    // back to draft, then deletable with its lines
    assert_eq!(
        sb.execute_kw("account.move", "button_draft", json!([[inv]]), json!({}))
            .await
            .get("error"),
        None
    );
    sb.ok("account.move", "unlink", json!([[inv]]), json!({}))
        .await;
    assert_eq!(
        sb.ok("account.move.line", "search_count", json!([[]]), json!({}))
            .await,
        0
    );
}

#[tokio::test]
async fn products_stock_employees_partners() {
    let sb = spawn().await;
    let p = product(&sb, "widget", 9.5).await;
    let fields = sb
        .ok(
            "product.product",
            "fields_get",
            json!([["type"], ["selection"]]),
            json!({}),
        )
        .await;
    // Odoo 17 still has the "Storable Product" type
    assert_eq!(
        fields["type"]["selection"][2],
        json!(["product", "Storable Product"])
    );
    let stock = sb
        .ok(
            "stock.location",
            "search",
            json!([[["usage", "=", "internal"]]]),
            json!({}),
        )
        .await[0]
        .clone();
    let quant = sb
        .ok(
            "stock.quant",
            "create",
            json!([{"product_id": p, "location_id": stock, "quantity": 12, "ref": "intent-q"}]),
            json!({}),
        )
        .await;
    let rec = &sb
        .ok(
            "stock.quant",
            "search_read",
            json!([
                [["product_id.default_code", "=", "WIDGET"]],
                ["product_id", "location_id", "quantity"]
            ]),
            json!({}),
        )
        .await[0];
    assert_eq!(rec["id"], quant);
    assert_eq!(rec["product_id"], json!([p, "[WIDGET] widget"]));
    assert_eq!(rec["location_id"][1], "WH/Stock");
    assert_eq!(rec["quantity"], 12.0);

    let dept = sb
        .ok(
            "hr.department",
            "search",
            json!([[["name", "=", "Sales"]]]),
            json!({}),
        )
        .await[0]
        .clone();
    let emp = sb
        .ok(
            "hr.employee",
            "create",
            json!([{"name": "Jane Doe", "work_email": "jane@example.com", "job_title": "Account Executive", "department_id": dept}]),
            json!({}),
        )
        .await;
    let rec = &sb
        .ok(
            "hr.employee",
            "search_read",
            json!([
                [["department_id", "=", "Sales"]],
                ["name", "work_email", "job_title", "department_id"]
            ]),
            json!({}),
        )
        .await[0];
    assert_eq!(rec["id"], emp);
    assert_eq!(rec["work_email"], "jane@example.com");
    assert_eq!(rec["department_id"], json!([dept, "Sales"]));

    // res.partner: the default order is complete_name, display_name follows it
    partner(&sb, "Zeta").await;
    partner(&sb, "Alpha").await;
    let names = sb
        .ok(
            "res.partner",
            "search_read",
            json!([[], ["display_name", "ref"]]),
            json!({}),
        )
        .await;
    assert_eq!(names[0]["display_name"], "Alpha");
    assert_eq!(names[0]["ref"], "intent-Alpha");
    assert_eq!(names[1]["display_name"], "Zeta");
    let found = sb
        .ok(
            "res.partner",
            "search_count",
            json!([[["ref", "=", "intent-Zeta"]]]),
            json!({}),
        )
        .await;
    assert_eq!(found, 1);
    // every model is listed in ir.model
    let models = sb
        .ok("ir.model", "search_read", json!([[], ["model"]]), json!({}))
        .await;
    let names: Vec<&str> = models
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    for m in [
        "crm.lead",
        "res.partner",
        "sale.order",
        "sale.order.line",
        "account.move",
        "product.product",
        "stock.quant",
        "hr.employee",
    ] {
        assert!(names.contains(&m), "{m} missing from {names:?}");
    }
}

#[tokio::test]
async fn version_18_and_19_product_fields() {
    for version in ["18.0", "19.0"] {
        let sb = spawn_with(OdooSandboxConfig {
            server_version: version.into(),
            ..OdooSandboxConfig::default()
        })
        .await;
        let fields = sb
            .ok(
                "product.product",
                "fields_get",
                json!([["type", "is_storable"]]),
                json!({}),
            )
            .await;
        assert_eq!(
            fields["type"]["selection"],
            json!([
                ["consu", "Goods"],
                ["service", "Service"],
                ["combo", "Combo"]
            ])
        );
        assert_eq!(fields["is_storable"]["type"], "boolean");
        let err = sb
            .err(
                "product.product",
                "create",
                json!([{"name": "x", "type": "product"}]),
                json!({}),
            )
            .await;
        assert_odoo_error(&err, "builtins.ValueError");
    }
}

fn as_ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn write_date_semantics() {
    let sb = spawn().await;
    // one create call = one transaction: every record shares one write_date
    let batch = sb
        .ok(
            "crm.lead",
            "create",
            json!([[{"name": "a"}, {"name": "b"}, {"name": "c"}]]),
            json!({}),
        )
        .await;
    let batch = as_ids(&batch);
    let recs = sb
        .ok(
            "crm.lead",
            "read",
            json!([batch, ["write_date", "create_date"]]),
            json!({}),
        )
        .await;
    let stamp = recs[0]["write_date"].as_str().unwrap().to_owned();
    assert_eq!(stamp.len(), 19, "read returns 'YYYY-MM-DD HH:MM:SS'");
    assert!(recs
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["write_date"] == stamp.as_str()));
    assert_eq!(recs[0]["create_date"], stamp.as_str());

    // >= on the string form: the whole second and later
    let ge = sb
        .ok(
            "crm.lead",
            "search",
            json!([[["write_date", ">=", stamp]]]),
            json!({"order": "id"}),
        )
        .await;
    assert_eq!(as_ids(&ge), batch);
    // a date alone means the start of the day for >=, its end for >
    let day = &stamp[..10];
    let ge_day = sb
        .ok(
            "crm.lead",
            "search_count",
            json!([[["write_date", ">=", day]]]),
            json!({}),
        )
        .await;
    assert_eq!(ge_day, 3);
    let gt_day = sb
        .ok(
            "crm.lead",
            "search_count",
            json!([[["write_date", ">", day]]]),
            json!({}),
        )
        .await;
    assert_eq!(gt_day, 0);

    // a write moves write_date (only of the written records), create_date stays. Odoo's
    // timestamps have a one-second resolution, so these records were last written in the
    // past (seeded, backdated) rather than a second ago.
    let old = "2024-01-02 03:04:05";
    let (status, seeded) = sb
        .seed(
            json!({"model": "crm.lead", "count": 3, "values": {"referred": "wd"},
                     "write_date": old}),
        )
        .await;
    assert_eq!(status, 200, "{seeded}");
    let batch = as_ids(
        &sb.ok(
            "crm.lead",
            "search",
            json!([[["referred", "=", "wd"]]]),
            json!({"order": "id"}),
        )
        .await,
    );
    assert_eq!(batch.len(), 3);
    let mine = json!(["id", "in", batch]);
    sb.ok(
        "crm.lead",
        "write",
        json!([[batch[1]], {"phone": "1"}]),
        json!({}),
    )
    .await;
    let after = sb
        .ok(
            "crm.lead",
            "read",
            json!([[batch[1]], ["write_date", "create_date"]]),
            json!({}),
        )
        .await;
    let moved = after[0]["write_date"].as_str().unwrap().to_owned();
    assert!(moved.as_str() > old, "{moved} > {old}");
    assert_eq!(after[0]["create_date"], old);
    // > on the read value (seconds) finds exactly the records changed after it
    let changed = sb
        .ok(
            "crm.lead",
            "search",
            json!([[mine, ["write_date", ">", old]]]),
            json!({"order": "write_date asc, id asc"}),
        )
        .await;
    assert_eq!(as_ids(&changed), vec![batch[1]]);
    // incremental pull pattern: >= cursor, ordered by write_date then id
    let page = sb
        .ok(
            "crm.lead",
            "search_read",
            json!([[mine, ["write_date", ">=", old]], ["write_date"]]),
            json!({"order": "write_date asc, id asc"}),
        )
        .await;
    let order: Vec<i64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(order, vec![batch[0], batch[2], batch[1]]);
    assert_eq!(page[2]["write_date"], moved.as_str());
    // every write moves write_date, even two within one second
    sb.ok(
        "crm.lead",
        "write",
        json!([[batch[0]], {"phone": "2"}]),
        json!({}),
    )
    .await;
    sb.ok(
        "crm.lead",
        "write",
        json!([[batch[2]], {"phone": "3"}]),
        json!({}),
    )
    .await;
    let latest = sb
        .ok(
            "crm.lead",
            "search",
            json!([[]]),
            json!({"order": "write_date desc, id desc", "limit": 1}),
        )
        .await;
    assert_eq!(latest, json!([batch[2]]));
}
