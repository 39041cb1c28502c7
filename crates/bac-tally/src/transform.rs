//! Tally's objects <-> the platform's records. Where a Tally voucher becomes the record its
//! `bac.tally.voucher.v1` event carries ([`voucher`]), and where a record the platform
//! writes becomes the voucher or ledger Tally imports ([`voucher_out`], [`ledger_out`]).
//!
//! Tally signs amounts: a negative amount is a debit. Records carry amounts as positive
//! numbers with a `side` (`debit` or `credit`), dates as `YYYY-MM-DD`, and every object's
//! `GUID` as its `id`, `ALTERID` as its version.
use bac_runtime::{ErrorCode, ServiceError};
use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use crate::xml::{
    self, amount_units, amount_value, parse_amount, parse_date, parse_quantity, parse_rate,
    tally_amount, tally_date, CostCentreIn, GroupIn, InventoryEntryIn, InventoryEntryOut,
    LedgerEntryIn, LedgerEntryOut, LedgerIn, LedgerOut, StockItemIn, Text, VoucherIn, VoucherOut,
};

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("tally", ErrorCode::InvalidRequest, msg)
}

fn text(t: &Text) -> Value {
    match t.trimmed() {
        "" => Value::Null,
        s => Value::from(s),
    }
}

/// `{"amount": 1180.0, "side": "debit"}` from Tally's signed amount.
fn balance(t: &Text) -> Value {
    let units = parse_amount(t.trimmed()).unwrap_or(0);
    json!({"amount": amount_value(units.abs()), "side": side(units)})
}

fn side(units: i64) -> &'static str {
    if units < 0 {
        "debit"
    } else {
        "credit"
    }
}

/// What every object has: `id` (the GUID), `name`, `master_id`, `alter_id`.
fn base(
    guid: &Text,
    name: String,
    master_id: &Text,
    alter_id: &Text,
) -> Option<Map<String, Value>> {
    let guid = guid.trimmed();
    if guid.is_empty() {
        return None;
    }
    let mut m = Map::new();
    m.insert("id".into(), json!(guid));
    if !name.is_empty() {
        m.insert("name".into(), json!(name));
    }
    m.insert("master_id".into(), json!(master_id.number()));
    m.insert("alter_id".into(), json!(alter_id.number()));
    Some(m)
}

pub fn group(g: &GroupIn) -> Option<Value> {
    let mut m = base(&g.guid, g.name(), &g.master_id, &g.alter_id)?;
    m.insert("parent".into(), text(&g.parent));
    m.insert("is_revenue".into(), json!(g.is_revenue.yes()));
    m.insert("is_deemed_positive".into(), json!(g.deemed_positive.yes()));
    Some(Value::Object(m))
}

pub fn ledger(l: &LedgerIn) -> Option<Value> {
    let mut m = base(&l.guid, l.name(), &l.master_id, &l.alter_id)?;
    m.insert("parent".into(), text(&l.parent));
    m.insert("opening_balance".into(), balance(&l.opening_balance));
    m.insert("closing_balance".into(), balance(&l.closing_balance));
    m.insert("email".into(), text(&l.email));
    m.insert("phone".into(), text(&l.phone));
    Some(Value::Object(m))
}

pub fn cost_centre(c: &CostCentreIn) -> Option<Value> {
    let mut m = base(&c.guid, c.name(), &c.master_id, &c.alter_id)?;
    m.insert("parent".into(), text(&c.parent));
    m.insert("category".into(), text(&c.category));
    Some(Value::Object(m))
}

fn quantity(t: &Text) -> (Value, Value) {
    let (n, unit) = parse_quantity(t.trimmed());
    (
        n.map(Value::from).unwrap_or(Value::Null),
        if unit.is_empty() {
            Value::Null
        } else {
            Value::from(unit)
        },
    )
}

fn money(t: &Text) -> Value {
    parse_amount(t.trimmed())
        .map(|u| amount_value(u.abs()))
        .unwrap_or(Value::Null)
}

pub fn stock_item(s: &StockItemIn) -> Option<Value> {
    let mut m = base(&s.guid, s.name(), &s.master_id, &s.alter_id)?;
    m.insert("parent".into(), text(&s.parent));
    m.insert("base_units".into(), text(&s.base_units));
    let (q, _) = quantity(&s.opening_balance);
    m.insert("opening_quantity".into(), q);
    m.insert("opening_value".into(), money(&s.opening_value));
    m.insert(
        "opening_rate".into(),
        parse_rate(s.opening_rate.trimmed())
            .map(|u| amount_value(u.abs()))
            .unwrap_or(Value::Null),
    );
    let (q, _) = quantity(&s.closing_balance);
    m.insert("closing_quantity".into(), q);
    m.insert("closing_value".into(), money(&s.closing_value));
    Some(Value::Object(m))
}

fn ledger_entry(e: &LedgerEntryIn) -> Option<Value> {
    let name = e.ledger.trimmed();
    if name.is_empty() {
        return None; // Tally writes empty `.LIST` elements
    }
    let units = parse_amount(e.amount.trimmed()).unwrap_or(0);
    Some(json!({"ledger_name": name, "amount": amount_value(units.abs()), "side": side(units)}))
}

fn inventory_entry(e: &InventoryEntryIn) -> Option<Value> {
    let name = e.item.trimmed();
    if name.is_empty() {
        return None;
    }
    let billed = if e.billed_qty.trimmed().is_empty() {
        &e.actual_qty
    } else {
        &e.billed_qty
    };
    let (q, unit) = quantity(billed);
    let ledger = e
        .allocations
        .iter()
        .map(|a| a.ledger.trimmed())
        .find(|l| !l.is_empty());
    Some(json!({
        "stock_item_name": name,
        "quantity": q,
        "unit": unit,
        "rate": parse_rate(e.rate.trimmed()).map(|u| amount_value(u.abs())),
        "amount": money(&e.amount),
        "ledger_name": ledger,
    }))
}

pub fn voucher(v: &VoucherIn) -> Option<Value> {
    let mut m = base(&v.guid, String::new(), &v.master_id, &v.alter_id)?;
    m.insert(
        "date".into(),
        parse_date(v.date.trimmed())
            .map(|d| json!(d.format("%Y-%m-%d").to_string()))
            .unwrap_or(Value::Null),
    );
    let vtype = match v.voucher_type.trimmed() {
        "" => v.vch_type.trim(),
        t => t,
    };
    m.insert("voucher_type".into(), json!(vtype));
    m.insert("voucher_number".into(), text(&v.number));
    m.insert("reference".into(), text(&v.reference));
    m.insert("party_ledger_name".into(), text(&v.party));
    m.insert("narration".into(), text(&v.narration));
    m.insert("is_cancelled".into(), json!(v.cancelled.yes()));
    m.insert("is_optional".into(), json!(v.optional.yes()));
    // TallyPrime may answer with both lists of one voucher's entries: the `ALL` one is whole
    let ledgers = if v
        .all_ledger_entries
        .iter()
        .any(|e| !e.ledger.trimmed().is_empty())
    {
        &v.all_ledger_entries
    } else {
        &v.ledger_entries
    };
    let items = if v
        .inventory_entries
        .iter()
        .any(|e| !e.item.trimmed().is_empty())
    {
        &v.inventory_entries
    } else {
        &v.inventory_entries_old
    };
    let entries: Vec<Value> = ledgers.iter().filter_map(ledger_entry).collect();
    let inventory: Vec<Value> = items.iter().filter_map(inventory_entry).collect();
    // what the voucher moves: its debits (ledger entries and inventory allocations)
    let debits: i64 = ledgers
        .iter()
        .chain(items.iter().flat_map(|i| &i.allocations))
        .filter_map(|e| parse_amount(e.amount.trimmed()))
        .filter(|u| *u < 0)
        .map(i64::abs)
        .sum();
    m.insert("amount".into(), amount_value(debits));
    m.insert("ledger_entries".into(), Value::Array(entries));
    m.insert("inventory_entries".into(), Value::Array(inventory));
    Some(Value::Object(m))
}

// ------------------------------------------------------------------------------ writes

/// The voucher types Tally has from the start; a company may add its own (any name works,
/// Tally refuses one it does not know with its own line error).
pub const VOUCHER_TYPES: &[&str] = &[
    "Sales",
    "Purchase",
    "Receipt",
    "Payment",
    "Journal",
    "Contra",
    "Credit Note",
    "Debit Note",
];

fn string_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<&'a str>, ServiceError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if s.chars().count() <= max && !s.chars().any(|c| c.is_control() && c != '\n') =>
        {
            Ok(Some(s.as_str()).filter(|s| !s.trim().is_empty()))
        }
        Some(Value::String(_)) => Err(bad(format!(
            "{key} must be text of at most {max} characters without control characters"
        ))),
        Some(_) => Err(bad(format!("{key} must be text"))),
    }
}

fn positive_amount(v: &Value, at: &str) -> Result<i64, ServiceError> {
    match amount_units(v) {
        Some(u) if u > 0 => Ok(u),
        _ => Err(bad(format!(
            "{at} must be a positive amount with at most four decimals"
        ))),
    }
}

fn debit(v: &Value, at: &str) -> Result<bool, ServiceError> {
    match v.as_str() {
        Some("debit") => Ok(true),
        Some("credit") => Ok(false),
        _ => Err(bad(format!("{at} must be \"debit\" or \"credit\""))),
    }
}

fn entry_out(ledger: &str, units: i64, is_debit: bool) -> LedgerEntryOut {
    LedgerEntryOut {
        ledger: ledger.to_string(),
        // Tally: a debit is deemed positive and written negative
        deemed_positive: xml::yes_no(is_debit),
        is_party: None,
        amount: tally_amount(if is_debit { -units } else { units }),
    }
}

const VOUCHER_FIELDS: &[&str] = &[
    "date",
    "voucher_type",
    "voucher_number",
    "reference",
    "party_ledger_name",
    "narration",
    "ledger_entries",
    "inventory_entries",
];

/// A voucher for Tally from a record's values (every field of a create; an alteration
/// sends the record it has now with the changes laid over it).
pub fn voucher_out(values: &Value) -> Result<VoucherOut, ServiceError> {
    let Some(obj) = values.as_object() else {
        return Err(bad("a voucher must be an object"));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !VOUCHER_FIELDS.contains(&k.as_str()) && !READ_ONLY.contains(&k.as_str()))
    {
        return Err(bad(format!(
            "{k} is not a voucher field (writable: {})",
            VOUCHER_FIELDS.join(", ")
        )));
    }
    let date = string_field(obj, "date", 10)?
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| bad("date is required, as YYYY-MM-DD"))?;
    let vtype = string_field(obj, "voucher_type", 100)?.ok_or_else(|| {
        bad(format!(
            "voucher_type is required ({}, or one the company made)",
            VOUCHER_TYPES.join(", ")
        ))
    })?;
    let entries = obj
        .get("ledger_entries")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            bad("ledger_entries is required: [{ledger_name, amount, side: debit|credit}]")
        })?;
    if entries.len() > 1000 {
        return Err(bad("a voucher has at most 1000 ledger entries"));
    }
    let mut ledgers = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = format!("ledger_entries[{i}]");
        let Some(e) = e.as_object() else {
            return Err(bad(format!("{at} must be an object")));
        };
        let name = string_field(e, "ledger_name", 200)?
            .ok_or_else(|| bad(format!("{at}.ledger_name is required")))?;
        let units = positive_amount(
            e.get("amount").unwrap_or(&Value::Null),
            &format!("{at}.amount"),
        )?;
        let is_debit = debit(e.get("side").unwrap_or(&Value::Null), &format!("{at}.side"))?;
        ledgers.push(entry_out(name, units, is_debit));
    }
    let mut inventory = Vec::new();
    if let Some(items) = obj.get("inventory_entries").filter(|v| !v.is_null()) {
        let Some(items) = items.as_array() else {
            return Err(bad("inventory_entries must be a list"));
        };
        for (i, e) in items.iter().enumerate() {
            let at = format!("inventory_entries[{i}]");
            let Some(e) = e.as_object() else {
                return Err(bad(format!("{at} must be an object")));
            };
            let item = string_field(e, "stock_item_name", 200)?
                .ok_or_else(|| bad(format!("{at}.stock_item_name is required")))?;
            let qty = e
                .get("quantity")
                .and_then(Value::as_f64)
                .filter(|q| q.is_finite() && *q > 0.0)
                .ok_or_else(|| bad(format!("{at}.quantity must be a positive number")))?;
            let unit = string_field(e, "unit", 20)?.unwrap_or("Nos");
            let units = positive_amount(
                e.get("amount").unwrap_or(&Value::Null),
                &format!("{at}.amount"),
            )?;
            let ledger = string_field(e, "ledger_name", 200)?.ok_or_else(|| {
                bad(format!(
                    "{at}.ledger_name is required: the sales or purchase ledger the item is accounted in"
                ))
            })?;
            // goods out (sales, debit notes) are credits; goods in are debits
            let goods_in = matches!(vtype, "Purchase" | "Credit Note");
            let qty_text = format!("{qty} {unit}");
            let rate = e
                .get("rate")
                .filter(|v| !v.is_null())
                .map(|r| positive_amount(r, &format!("{at}.rate")))
                .transpose()?;
            inventory.push(InventoryEntryOut {
                item: item.to_string(),
                deemed_positive: xml::yes_no(goods_in),
                rate: rate.map(|r| format!("{}/{unit}", tally_amount(r))),
                amount: tally_amount(if goods_in { -units } else { units }),
                actual_qty: Some(qty_text.clone()),
                billed_qty: Some(qty_text),
                allocations: vec![entry_out(ledger, units, goods_in)],
            });
        }
    }
    let party = string_field(obj, "party_ledger_name", 200)?;
    if let Some(p) = party {
        for l in ledgers.iter_mut().filter(|l| l.ledger == p) {
            l.is_party = Some("Yes");
        }
    }
    // an invoice's ledger entries go in its own list, a journal's in the `ALL` one
    let (ledgers, invoice_ledgers) = if inventory.is_empty() {
        (ledgers, Vec::new())
    } else {
        (Vec::new(), ledgers)
    };
    Ok(VoucherOut {
        vch_type: vtype.to_string(),
        action: "Create",
        date: Some(tally_date(date)),
        voucher_type: Some(vtype.to_string()),
        number: string_field(obj, "voucher_number", 100)?.map(str::to_string),
        reference: string_field(obj, "reference", 100)?.map(str::to_string),
        party: party.map(str::to_string),
        narration: string_field(obj, "narration", 4000)?.map(str::to_string),
        is_invoice: Some(xml::yes_no(!inventory.is_empty())),
        ledgers,
        invoice_ledgers,
        inventory,
        ..VoucherOut::default()
    })
}

/// Fields of a pulled record that a write may carry back unchanged (an alteration lays its
/// changes over the record as read).
const READ_ONLY: &[&str] = &[
    "id",
    "master_id",
    "alter_id",
    "is_cancelled",
    "is_optional",
    "amount",
    "name",
    "parent",
    "opening_balance",
    "closing_balance",
    "email",
    "phone",
];

const LEDGER_FIELDS: &[&str] = &["name", "parent", "opening_balance", "email", "phone"];

/// A ledger master for Tally from a record's values.
pub fn ledger_out(values: &Value) -> Result<LedgerOut, ServiceError> {
    let Some(obj) = values.as_object() else {
        return Err(bad("a ledger must be an object"));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !LEDGER_FIELDS.contains(&k.as_str()) && !READ_ONLY.contains(&k.as_str()))
    {
        return Err(bad(format!(
            "{k} is not a ledger field (writable: {})",
            LEDGER_FIELDS.join(", ")
        )));
    }
    let name = string_field(obj, "name", 200)?.ok_or_else(|| bad("name is required"))?;
    let parent = string_field(obj, "parent", 200)?.ok_or_else(|| {
        bad("parent is required: the group the ledger is under (Sundry Debtors, Sales Accounts...)")
    })?;
    let opening = match obj.get("opening_balance").filter(|v| !v.is_null()) {
        None => None,
        Some(b) => {
            let units = match b.get("amount") {
                Some(a) if a.as_f64() == Some(0.0) => 0,
                Some(a) => positive_amount(a, "opening_balance.amount")?,
                None => return Err(bad("opening_balance must be {amount, side}")),
            };
            let is_debit = debit(
                b.get("side").unwrap_or(&json!("credit")),
                "opening_balance.side",
            )?;
            Some(tally_amount(if is_debit { -units } else { units }))
        }
    };
    let email = string_field(obj, "email", 200)?;
    if email.is_some_and(|e| !e.contains('@')) {
        return Err(bad("email is not an email address"));
    }
    Ok(LedgerOut {
        name: name.to_string(),
        action: "Create",
        parent: Some(parent.to_string()),
        opening_balance: opening,
        email: email.map(str::to_string),
        phone: string_field(obj, "phone", 50)?.map(str::to_string),
        ..LedgerOut::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voucher_reads_with_sides_and_writes_back_signed() {
        let xml = "<ENVELOPE><BODY><DATA><COLLECTION><VOUCHER VCHTYPE=\"Sales\">\
<GUID>g-1</GUID><ALTERID> 7</ALTERID><MASTERID>3</MASTERID><DATE>20261205</DATE><VOUCHERTYPENAME>Sales</VOUCHERTYPENAME>\
<PARTYLEDGERNAME>Acme</PARTYLEDGERNAME>\
<ALLLEDGERENTRIES.LIST><LEDGERNAME>Acme</LEDGERNAME><ISDEEMEDPOSITIVE>Yes</ISDEEMEDPOSITIVE><AMOUNT>-1180.00</AMOUNT></ALLLEDGERENTRIES.LIST>\
<ALLLEDGERENTRIES.LIST><LEDGERNAME>Sales</LEDGERNAME><ISDEEMEDPOSITIVE>No</ISDEEMEDPOSITIVE><AMOUNT>1000.00</AMOUNT></ALLLEDGERENTRIES.LIST>\
<ALLLEDGERENTRIES.LIST><LEDGERNAME>GST</LEDGERNAME><AMOUNT>180.00</AMOUNT></ALLLEDGERENTRIES.LIST>\
</VOUCHER></COLLECTION></DATA></BODY></ENVELOPE>";
        let c = xml::parse_collection(xml).unwrap();
        let v = voucher(&c.vouchers[0]).unwrap();
        assert_eq!(v["id"], "g-1");
        assert_eq!(v["alter_id"], 7);
        assert_eq!(v["date"], "2026-12-05");
        assert_eq!(v["amount"], 1180.0);
        assert_eq!(
            v["ledger_entries"][0],
            json!({"ledger_name": "Acme", "amount": 1180.0, "side": "debit"})
        );
        let out = voucher_out(&v).unwrap();
        assert_eq!(out.ledgers[0].amount, "-1180.00");
        assert_eq!(out.ledgers[0].deemed_positive, "Yes");
        assert_eq!(out.ledgers[0].is_party, Some("Yes"));
        assert_eq!(out.ledgers[1].amount, "1000.00");
        assert_eq!(out.date.as_deref(), Some("20261205"));
        for (bad, why) in [
            (
                json!({"voucher_type": "Sales", "ledger_entries": [{}]}),
                "date",
            ),
            (
                json!({"date": "2026-12-05", "ledger_entries": []}),
                "voucher_type",
            ),
            (
                json!({"date": "2026-12-05", "voucher_type": "Sales", "ledger_entries": [{"ledger_name": "A", "amount": -1, "side": "debit"}]}),
                "amount",
            ),
            (
                json!({"date": "2026-12-05", "voucher_type": "Sales", "ledger_entries": [{"ledger_name": "A", "amount": 1, "side": "dr"}]}),
                "side",
            ),
            (
                json!({"date": "2026-12-05", "voucher_type": "Sales", "ledger_entries": [{"ledger_name": "A", "amount": 1, "side": "debit"}], "colour": 1}),
                "colour",
            ),
        ] {
            let e = voucher_out(&bad).unwrap_err();
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn a_ledger_reads_its_balances_and_writes_back() {
        let xml = "<ENVELOPE><BODY><DATA><COLLECTION><LEDGER NAME=\"Acme &amp; Sons\"><GUID>g-2</GUID><PARENT>Sundry Debtors</PARENT>\
<OPENINGBALANCE>-500.00</OPENINGBALANCE><CLOSINGBALANCE>1500.50</CLOSINGBALANCE><ALTERID> 9</ALTERID></LEDGER></COLLECTION></DATA></BODY></ENVELOPE>";
        let c = xml::parse_collection(xml).unwrap();
        let l = ledger(&c.ledgers[0]).unwrap();
        assert_eq!(l["name"], "Acme & Sons");
        assert_eq!(
            l["opening_balance"],
            json!({"amount": 500.0, "side": "debit"})
        );
        assert_eq!(
            l["closing_balance"],
            json!({"amount": 1500.5, "side": "credit"})
        );
        let out = ledger_out(&l).unwrap();
        assert_eq!(out.opening_balance.as_deref(), Some("-500.00"));
        assert!(ledger_out(&json!({"name": "X"})).is_err());
        assert!(ledger_out(&json!({"name": "X", "parent": "P", "email": "nope"})).is_err());
    }
}
