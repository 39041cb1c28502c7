//! The envelopes a Tally client sends, read as Tally reads them, and the answers written as
//! Tally writes them: `TYPE` attributes on values, numbers padded (`<ALTERID> 12</ALTERID>`),
//! a primary group's parent as `&#4; Primary`, only the fetched fields.
//!
//! Requests: `Export` of a `Collection` defined in the request's TDL (`TYPE`, `FETCH`,
//! `FILTER` naming `SYSTEM` formulae beside or inside the collection), and `Import Data`
//! (`IMPORTDATA/REQUESTDESC/REPORTNAME`, `REQUESTDATA/TALLYMESSAGE`) or TallyPrime's
//! `Import`/`Data` form (`BODY/DATA/TALLYMESSAGE`).
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::books::{
    fmt_amount, parse_amount, Books, Entry, InventoryEntry, Kind, LedgerIn, Object, Units,
    VoucherIn,
};

#[derive(Debug, Default, Clone, Deserialize)]
pub struct T {
    #[serde(rename = "$text", default)]
    pub text: String,
}

fn t(o: &Option<T>) -> String {
    o.as_ref()
        .map(|t| t.text.trim().to_string())
        .unwrap_or_default()
}

#[derive(Debug, Default, Deserialize)]
pub struct Envelope {
    #[serde(rename = "HEADER", default)]
    pub header: Header,
    #[serde(rename = "BODY", default)]
    pub body: Body,
}

#[derive(Debug, Default, Deserialize)]
pub struct Header {
    #[serde(rename = "TALLYREQUEST")]
    pub request: Option<T>,
    #[serde(rename = "TYPE")]
    pub kind: Option<T>,
    #[serde(rename = "ID")]
    pub id: Option<T>,
    #[serde(rename = "SUBTYPE")]
    pub subtype: Option<T>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Body {
    #[serde(rename = "DESC")]
    pub desc: Option<Desc>,
    #[serde(rename = "IMPORTDATA")]
    pub import: Option<ImportData>,
    #[serde(rename = "DATA")]
    pub data: Option<Messages>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Desc {
    #[serde(rename = "STATICVARIABLES")]
    pub vars: Option<Vars>,
    #[serde(rename = "TDL")]
    pub tdl: Option<Tdl>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Vars {
    #[serde(rename = "SVCURRENTCOMPANY")]
    pub company: Option<T>,
    #[serde(rename = "SVFROMDATE")]
    pub from: Option<T>,
    #[serde(rename = "SVTODATE")]
    pub to: Option<T>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Tdl {
    #[serde(rename = "TDLMESSAGE")]
    pub message: Option<TdlMessage>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TdlMessage {
    #[serde(rename = "COLLECTION", default)]
    pub collections: Vec<CollectionDef>,
    #[serde(rename = "SYSTEM", default)]
    pub system: Vec<Formula>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CollectionDef {
    #[serde(rename = "@NAME", default)]
    pub name: String,
    #[serde(rename = "TYPE")]
    pub kind: Option<T>,
    #[serde(rename = "FETCH", default)]
    pub fetch: Vec<T>,
    /// `NATIVEMETHOD`s name fields to fetch as well.
    #[serde(rename = "NATIVEMETHOD", default)]
    pub native: Vec<T>,
    #[serde(rename = "FILTER", default)]
    pub filter: Vec<T>,
    #[serde(rename = "FILTERS", default)]
    pub filters: Vec<T>,
    #[serde(rename = "SYSTEM", default)]
    pub system: Vec<Formula>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Formula {
    #[serde(rename = "@NAME", default)]
    pub name: String,
    #[serde(rename = "$text", default)]
    pub text: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ImportData {
    #[serde(rename = "REQUESTDESC")]
    pub desc: Option<RequestDesc>,
    #[serde(rename = "REQUESTDATA")]
    pub data: Option<Messages>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RequestDesc {
    #[serde(rename = "REPORTNAME")]
    pub report: Option<T>,
    #[serde(rename = "STATICVARIABLES")]
    pub vars: Option<Vars>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Messages {
    #[serde(rename = "TALLYMESSAGE", default)]
    pub messages: Vec<Message>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Message {
    #[serde(rename = "VOUCHER", default)]
    pub vouchers: Vec<VoucherXml>,
    #[serde(rename = "LEDGER", default)]
    pub ledgers: Vec<LedgerXml>,
}

#[derive(Debug, Default, Deserialize)]
pub struct VoucherXml {
    #[serde(rename = "@REMOTEID", default)]
    pub remote_id: String,
    #[serde(rename = "@VCHTYPE", default)]
    pub vch_type: String,
    #[serde(rename = "@ACTION", alias = "@Action", default)]
    pub action: String,
    #[serde(rename = "@DATE", default)]
    pub date_attr: String,
    #[serde(rename = "@TAGNAME", default)]
    pub tag_name: String,
    #[serde(rename = "@TAGVALUE", default)]
    pub tag_value: String,
    #[serde(rename = "DATE")]
    pub date: Option<T>,
    #[serde(rename = "GUID")]
    pub guid: Option<T>,
    #[serde(rename = "VOUCHERTYPENAME")]
    pub voucher_type: Option<T>,
    #[serde(rename = "VOUCHERNUMBER")]
    pub number: Option<T>,
    #[serde(rename = "REFERENCE")]
    pub reference: Option<T>,
    #[serde(rename = "PARTYLEDGERNAME")]
    pub party: Option<T>,
    #[serde(rename = "NARRATION")]
    pub narration: Option<T>,
    #[serde(rename = "ALLLEDGERENTRIES.LIST", default)]
    pub all_entries: Vec<EntryXml>,
    #[serde(rename = "LEDGERENTRIES.LIST", default)]
    pub entries: Vec<EntryXml>,
    #[serde(rename = "ALLINVENTORYENTRIES.LIST", default)]
    pub inventory: Vec<InventoryXml>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EntryXml {
    #[serde(rename = "LEDGERNAME")]
    pub ledger: Option<T>,
    #[serde(rename = "AMOUNT")]
    pub amount: Option<T>,
}

#[derive(Debug, Default, Deserialize)]
pub struct InventoryXml {
    #[serde(rename = "STOCKITEMNAME")]
    pub item: Option<T>,
    #[serde(rename = "RATE")]
    pub rate: Option<T>,
    #[serde(rename = "AMOUNT")]
    pub amount: Option<T>,
    #[serde(rename = "BILLEDQTY")]
    pub billed: Option<T>,
    #[serde(rename = "ACTUALQTY")]
    pub actual: Option<T>,
    #[serde(rename = "ACCOUNTINGALLOCATIONS.LIST", default)]
    pub allocations: Vec<EntryXml>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LedgerXml {
    #[serde(rename = "@NAME", default)]
    pub name: String,
    #[serde(rename = "@ACTION", alias = "@Action", default)]
    pub action: String,
    #[serde(rename = "@REMOTEID", default)]
    pub remote_id: String,
    #[serde(rename = "NAME.LIST")]
    pub names: Option<NameList>,
    #[serde(rename = "NAME")]
    pub name_elem: Option<T>,
    #[serde(rename = "PARENT")]
    pub parent: Option<T>,
    #[serde(rename = "OPENINGBALANCE")]
    pub opening: Option<T>,
    #[serde(rename = "EMAIL")]
    pub email: Option<T>,
    #[serde(rename = "LEDGERPHONE")]
    pub phone: Option<T>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NameList {
    #[serde(rename = "NAME", default)]
    pub names: Vec<T>,
}

/// A request's envelope, or why it is not one.
pub fn parse(text: &str) -> Result<Envelope, String> {
    quick_xml::de::from_str(text).map_err(|e| e.to_string())
}

impl Envelope {
    pub fn request(&self) -> String {
        t(&self.header.request)
    }
    pub fn kind(&self) -> String {
        t(&self.header.kind)
    }
    pub fn id(&self) -> String {
        t(&self.header.id)
    }
    pub fn subtype(&self) -> String {
        t(&self.header.subtype)
    }
    pub fn vars(&self) -> Option<&Vars> {
        self.body
            .desc
            .as_ref()
            .and_then(|d| d.vars.as_ref())
            .or_else(|| {
                self.body
                    .import
                    .as_ref()
                    .and_then(|i| i.desc.as_ref())
                    .and_then(|d| d.vars.as_ref())
            })
    }
    pub fn company(&self) -> String {
        self.vars().map(|v| t(&v.company)).unwrap_or_default()
    }
    pub fn period(&self) -> (String, String) {
        self.vars()
            .map(|v| (t(&v.from), t(&v.to)))
            .unwrap_or_default()
    }
    /// The collection the request defines for its `ID`, and every formula it names.
    pub fn collection(&self) -> Option<(&CollectionDef, Vec<Formula>)> {
        let m = self.body.desc.as_ref()?.tdl.as_ref()?.message.as_ref()?;
        let id = self.id();
        let c = m
            .collections
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&id))
            .or(m.collections.first())?;
        let formulae = m.system.iter().chain(&c.system).cloned().collect();
        Some((c, formulae))
    }
    pub fn report(&self) -> String {
        self.body
            .import
            .as_ref()
            .and_then(|i| i.desc.as_ref())
            .map(|d| t(&d.report))
            .unwrap_or_default()
    }
    /// The messages of either import form.
    pub fn messages(&self) -> &[Message] {
        self.body
            .import
            .as_ref()
            .and_then(|i| i.data.as_ref())
            .or(self.body.data.as_ref())
            .map(|d| d.messages.as_slice())
            .unwrap_or(&[])
    }
}

fn entry(e: &EntryXml) -> Option<Entry> {
    let ledger = t(&e.ledger);
    (!ledger.is_empty()).then(|| Entry {
        ledger,
        amount: parse_amount(&t(&e.amount)).unwrap_or(0),
    })
}

impl VoucherXml {
    pub fn to_books(&self) -> VoucherIn {
        let mut fields = BTreeMap::new();
        for (k, v) in [
            ("DATE", &self.date),
            ("GUID", &self.guid),
            ("VOUCHERTYPENAME", &self.voucher_type),
            ("VOUCHERNUMBER", &self.number),
            ("REFERENCE", &self.reference),
            ("PARTYLEDGERNAME", &self.party),
            ("NARRATION", &self.narration),
        ] {
            let v = t(v);
            if !v.is_empty() {
                fields.insert(k.to_string(), v);
            }
        }
        VoucherIn {
            action: if self.action.is_empty() {
                "Create".into()
            } else {
                self.action.clone()
            },
            remote_id: self.remote_id.trim().to_string(),
            vch_type: self.vch_type.trim().to_string(),
            date_attr: self.date_attr.trim().to_string(),
            tag_name: self.tag_name.clone(),
            tag_value: self.tag_value.trim().to_string(),
            fields,
            all_entries: self.all_entries.iter().filter_map(entry).collect(),
            invoice_entries: self.entries.iter().filter_map(entry).collect(),
            inventory: self
                .inventory
                .iter()
                .filter(|i| !t(&i.item).is_empty())
                .map(|i| InventoryEntry {
                    item: t(&i.item),
                    quantity: if t(&i.billed).is_empty() {
                        t(&i.actual)
                    } else {
                        t(&i.billed)
                    },
                    rate: t(&i.rate),
                    amount: parse_amount(&t(&i.amount)).unwrap_or(0),
                    allocations: i.allocations.iter().filter_map(entry).collect(),
                })
                .collect(),
        }
    }
}

impl LedgerXml {
    pub fn to_books(&self) -> LedgerIn {
        let mut fields = BTreeMap::new();
        for (k, v) in [
            ("PARENT", &self.parent),
            ("OPENINGBALANCE", &self.opening),
            ("EMAIL", &self.email),
            ("LEDGERPHONE", &self.phone),
        ] {
            let v = t(v);
            if !v.is_empty() {
                fields.insert(k.to_string(), v);
            }
        }
        let mut new_names: Vec<String> = self
            .names
            .as_ref()
            .map(|n| n.names.iter().map(|x| x.text.trim().to_string()).collect())
            .unwrap_or_default();
        if new_names.is_empty() && !t(&self.name_elem).is_empty() {
            new_names.push(t(&self.name_elem));
        }
        LedgerIn {
            action: if self.action.is_empty() {
                "Create".into()
            } else {
                self.action.clone()
            },
            name_attr: self.name.clone(),
            new_names,
            remote_id: self.remote_id.trim().to_string(),
            fields,
        }
    }
}

// ------------------------------------------------------------------------------ filters

/// One clause of a TDL filter formula: `$AlterID > 10`, `$GUID = "x"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub field: String,
    pub op: String,
    pub value: String,
}

/// A formula of clauses joined by `AND`; `None` for what this sandbox does not read.
pub fn parse_formula(text: &str) -> Option<Vec<Clause>> {
    let mut out = Vec::new();
    let upper = text.to_ascii_uppercase();
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, _) in upper.match_indices(" AND ") {
        parts.push(&text[start..i]);
        start = i + 5;
    }
    parts.push(&text[start..]);
    for p in parts {
        let p = p.trim();
        let p = p.strip_prefix('$')?;
        let op_at = p.find(['<', '>', '='])?;
        let field = p[..op_at].trim().to_ascii_uppercase();
        let rest = &p[op_at..];
        let op_len = if rest.starts_with(">=") || rest.starts_with("<=") || rest.starts_with("<>") {
            2
        } else {
            1
        };
        let op = rest[..op_len].to_string();
        let value = rest[op_len..].trim().trim_matches('"').to_string();
        out.push(Clause { field, op, value });
    }
    Some(out)
}

fn holds(o: &Object, c: &Clause) -> bool {
    let num = |n: i64| -> bool {
        let Ok(v) = c.value.parse::<i64>() else {
            return false;
        };
        match c.op.as_str() {
            ">" => n > v,
            ">=" => n >= v,
            "<" => n < v,
            "<=" => n <= v,
            "=" => n == v,
            "<>" => n != v,
            _ => false,
        }
    };
    match c.field.as_str() {
        "ALTERID" => num(o.alter_id),
        "MASTERID" => num(o.master_id),
        field => {
            let have = match field {
                "GUID" => o.guid.as_str(),
                "NAME" => o.name.as_str(),
                f => o.field(f),
            };
            match c.op.as_str() {
                "=" => have.eq_ignore_ascii_case(&c.value),
                "<>" => !have.eq_ignore_ascii_case(&c.value),
                _ => false,
            }
        }
    }
}

// ------------------------------------------------------------------------------ answers

pub fn escape(s: &str) -> String {
    quick_xml::escape::escape(s)
        .into_owned()
        // Tally writes its control characters as references
        .replace('\u{4}', "&#4;")
}

pub const ENVELOPE_START: &str = "<ENVELOPE>\r\n <HEADER>\r\n  <VERSION>1</VERSION>\r\n  <STATUS>1</STATUS>\r\n </HEADER>\r\n <BODY>\r\n  <DESC>\r\n  </DESC>\r\n  <DATA>\r\n";
pub const ENVELOPE_END: &str = "  </DATA>\r\n </BODY>\r\n</ENVELOPE>\r\n";

/// Tally refusing an export with its line error.
pub fn refusal(msg: &str) -> String {
    format!(
        "<ENVELOPE>\r\n <HEADER>\r\n  <VERSION>1</VERSION>\r\n  <STATUS>0</STATUS>\r\n </HEADER>\r\n <BODY>\r\n  <DATA>\r\n   <LINEERROR>{}</LINEERROR>\r\n  </DATA>\r\n </BODY>\r\n</ENVELOPE>\r\n",
        escape(msg)
    )
}

fn value_type(field: &str) -> &'static str {
    match field {
        "ALTERID" | "MASTERID" => "Number",
        "DATE" => "Date",
        "OPENINGBALANCE" | "CLOSINGBALANCE" | "OPENINGVALUE" | "CLOSINGVALUE" => "Amount",
        "ISREVENUE" | "ISDEEMEDPOSITIVE" | "ISCANCELLED" | "ISOPTIONAL" => "Logical",
        _ => "String",
    }
}

fn entry_xml(out: &mut String, list: &str, e: &Entry, pad: &str) {
    out.push_str(&format!(
        "{pad}<{list}>\r\n{pad} <LEDGERNAME TYPE=\"String\">{}</LEDGERNAME>\r\n{pad} <ISDEEMEDPOSITIVE TYPE=\"Logical\">{}</ISDEEMEDPOSITIVE>\r\n{pad} <AMOUNT TYPE=\"Amount\">{}</AMOUNT>\r\n{pad}</{list}>\r\n",
        escape(&e.ledger),
        if e.amount < 0 { "Yes" } else { "No" },
        fmt_amount(e.amount)
    ));
}

/// One object with the fields asked for.
pub fn object_xml(o: &Object, fetch: &[String], closing: &BTreeMap<String, Units>) -> String {
    let tag = o.kind.tag();
    let mut out =
        match o.kind {
            Kind::Voucher => {
                format!(
            "    <VOUCHER REMOTEID=\"{}\" VCHTYPE=\"{}\" ACTION=\"Create\" OBJVIEW=\"{}\">\r\n",
            escape(&o.guid),
            escape(o.field("VOUCHERTYPENAME")),
            if o.invoice { "Invoice Voucher View" } else { "Accounting Voucher View" }
        )
            }
            _ => format!(
                "    <{tag} NAME=\"{}\" RESERVEDNAME=\"\">\r\n",
                escape(&o.name)
            ),
        };
    for f in fetch {
        let value = match f.as_str() {
            "NAME" => o.name.clone(),
            "GUID" => o.guid.clone(),
            "ALTERID" => format!(" {}", o.alter_id),
            "MASTERID" => format!(" {}", o.master_id),
            "CLOSINGBALANCE" if o.kind == Kind::Ledger => {
                let c = closing.get(&o.name.to_lowercase()).copied().unwrap_or(0);
                if c == 0 {
                    String::new()
                } else {
                    fmt_amount(c)
                }
            }
            "OPENINGBALANCE" if o.kind == Kind::Ledger => o.field("OPENINGBALANCE").to_string(),
            f => o.field(f).to_string(),
        };
        if o.kind == Kind::Voucher && f == "NAME" {
            continue;
        }
        out.push_str(&format!(
            "     <{f} TYPE=\"{}\">{}</{f}>\r\n",
            value_type(f),
            escape(&value)
        ));
    }
    if o.kind == Kind::Voucher {
        for i in &o.inventory {
            out.push_str(&format!(
                "     <ALLINVENTORYENTRIES.LIST>\r\n      <STOCKITEMNAME TYPE=\"String\">{}</STOCKITEMNAME>\r\n      <RATE TYPE=\"Rate\">{}</RATE>\r\n      <AMOUNT TYPE=\"Amount\">{}</AMOUNT>\r\n      <ACTUALQTY TYPE=\"Quantity\"> {}</ACTUALQTY>\r\n      <BILLEDQTY TYPE=\"Quantity\"> {}</BILLEDQTY>\r\n",
                escape(&i.item),
                escape(&i.rate),
                fmt_amount(i.amount),
                escape(&i.quantity),
                escape(&i.quantity)
            ));
            for a in &i.allocations {
                entry_xml(&mut out, "ACCOUNTINGALLOCATIONS.LIST", a, "      ");
            }
            out.push_str("     </ALLINVENTORYENTRIES.LIST>\r\n");
        }
        let list = if o.invoice {
            "LEDGERENTRIES.LIST"
        } else {
            "ALLLEDGERENTRIES.LIST"
        };
        for e in &o.entries {
            entry_xml(&mut out, list, e, "     ");
        }
        // Tally writes empty lists too
        out.push_str(&format!("     <{list}>      </{list}>\r\n"));
    }
    out.push_str(&format!("    </{tag}>\r\n"));
    out
}

/// The answer to a collection export of `kind` from `books`, or Tally's line error.
pub fn export(
    books: &Books,
    kind: Kind,
    def: &CollectionDef,
    formulae: &[Formula],
    period: (String, String),
    today: &str,
) -> String {
    let fetch: Vec<String> = def
        .fetch
        .iter()
        .chain(&def.native)
        .flat_map(|f| {
            f.text
                .split(',')
                .map(|s| s.trim().to_ascii_uppercase())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    let mut out = String::from(ENVELOPE_START);
    out.push_str("   <COLLECTION>\r\n");
    // Tally answers an empty collection when asked to fetch what the object does not have
    let known = fetch.iter().all(|f| kind.fields().contains(&f.as_str()));
    let names: Vec<String> = def
        .filter
        .iter()
        .chain(&def.filters)
        .flat_map(|f| {
            f.text
                .split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    let mut clauses = Vec::new();
    let mut readable = true;
    for n in &names {
        match formulae
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(n))
            .and_then(|f| parse_formula(&f.text))
        {
            Some(c) => clauses.extend(c),
            None => readable = false,
        }
    }
    if known && readable {
        // without a period Tally lists the current financial year's vouchers only
        let (from, to) = match period {
            (f, t) if !f.is_empty() && !t.is_empty() => (f, t),
            _ => financial_year(today),
        };
        let closing = if kind == Kind::Ledger {
            books.closing_balances()
        } else {
            BTreeMap::new()
        };
        for o in books.objects.iter().filter(|o| o.kind == kind) {
            if kind == Kind::Voucher {
                let d = o.field("DATE");
                if d < from.as_str() || d > to.as_str() {
                    continue;
                }
            }
            if clauses.iter().all(|c| holds(o, c)) {
                out.push_str(&object_xml(o, &fetch, &closing));
            }
        }
    }
    out.push_str("   </COLLECTION>\r\n");
    out.push_str(ENVELOPE_END);
    out
}

/// One object (`TYPE Object`, `SUBTYPE Ledger`, `ID` its name) with all its fields.
pub fn object(books: &Books, kind: Kind, name: &str) -> String {
    let Some(i) = books.find_master(kind, name) else {
        return refusal(&format!("{} '{name}' does not exist!", kind.label()));
    };
    let fetch: Vec<String> = kind.fields().iter().map(|f| f.to_string()).collect();
    let mut out = String::from(ENVELOPE_START);
    out.push_str("   <TALLYMESSAGE>\r\n");
    out.push_str(&object_xml(
        &books.objects[i],
        &fetch,
        &books.closing_balances(),
    ));
    out.push_str("   </TALLYMESSAGE>\r\n");
    out.push_str(ENVELOPE_END);
    out
}

/// A report of vouchers (`Day Book`, `Voucher Register`) exported as data: the vouchers of
/// the period in the import format (`IMPORTDATA/REQUESTDATA/TALLYMESSAGE`), so that they can
/// be imported again.
pub fn voucher_report(books: &Books, period: (String, String), today: &str) -> String {
    let (from, to) = match period {
        (f, t) if !f.is_empty() && !t.is_empty() => (f, t),
        _ => financial_year(today),
    };
    let fetch: Vec<String> = Kind::Voucher
        .fields()
        .iter()
        .map(|f| f.to_string())
        .collect();
    let mut out = String::from(
        "<ENVELOPE>\r\n <HEADER>\r\n  <TALLYREQUEST>Import Data</TALLYREQUEST>\r\n </HEADER>\r\n <BODY>\r\n  <IMPORTDATA>\r\n   <REQUESTDESC>\r\n    <REPORTNAME>Vouchers</REPORTNAME>\r\n   </REQUESTDESC>\r\n   <REQUESTDATA>\r\n",
    );
    for o in books.objects.iter().filter(|o| {
        o.kind == Kind::Voucher
            && o.field("DATE") >= from.as_str()
            && o.field("DATE") <= to.as_str()
    }) {
        out.push_str("    <TALLYMESSAGE xmlns:UDF=\"TallyUDF\">\r\n");
        out.push_str(&object_xml(o, &fetch, &BTreeMap::new()));
        out.push_str("    </TALLYMESSAGE>\r\n");
    }
    out.push_str("   </REQUESTDATA>\r\n  </IMPORTDATA>\r\n </BODY>\r\n</ENVELOPE>\r\n");
    out
}

/// The financial year (April to March) holding `today` (`YYYYMMDD`).
pub fn financial_year(today: &str) -> (String, String) {
    let year: i32 = today.get(..4).and_then(|y| y.parse().ok()).unwrap_or(2026);
    let month: u32 = today.get(4..6).and_then(|m| m.parse().ok()).unwrap_or(4);
    let start = if month >= 4 { year } else { year - 1 };
    (format!("{start}0401"), format!("{}0331", start + 1))
}

/// The companies open, as the `List of Companies` (or any `Company` collection) lists them.
pub fn companies(all: &[Books]) -> String {
    let mut out = String::from(ENVELOPE_START);
    out.push_str("   <COLLECTION>\r\n");
    for c in all.iter().filter(|c| c.open) {
        let name = escape(&c.name);
        out.push_str(&format!(
            "    <COMPANY NAME=\"{name}\" RESERVEDNAME=\"\">\r\n     <NAME TYPE=\"String\">{name}</NAME>\r\n     <GUID TYPE=\"String\">{}</GUID>\r\n     <STARTINGFROM TYPE=\"Date\">{}</STARTINGFROM>\r\n     <ALTMSTID TYPE=\"Number\"> {}</ALTMSTID>\r\n     <ALTVCHID TYPE=\"Number\"> {}</ALTVCHID>\r\n    </COMPANY>\r\n",
            escape(&c.guid),
            escape(&c.starting_from),
            c.alt_mst_id,
            c.alt_vch_id
        ));
    }
    out.push_str("   </COLLECTION>\r\n");
    out.push_str(ENVELOPE_END);
    out
}

/// An import's answer: `<RESPONSE>` to `Import Data`, an envelope with `<IMPORTRESULT>` to
/// TallyPrime's `Import` form.
pub fn import_answer(o: &crate::books::Outcome, prime: bool) -> String {
    let errors: String = o
        .line_errors
        .iter()
        .map(|l| format!(" <LINEERROR>{}</LINEERROR>\r\n", escape(l)))
        .collect();
    let counts = format!(
        " <CREATED>{}</CREATED>\r\n <ALTERED>{}</ALTERED>\r\n <DELETED>{}</DELETED>\r\n <LASTVCHID>{}</LASTVCHID>\r\n <LASTMID>{}</LASTMID>\r\n <COMBINED>0</COMBINED>\r\n <IGNORED>0</IGNORED>\r\n <ERRORS>{}</ERRORS>\r\n <CANCELLED>{}</CANCELLED>\r\n <EXCEPTIONS>{}</EXCEPTIONS>\r\n",
        o.created, o.altered, o.deleted, o.last_voucher_id, o.last_master_id, o.errors, o.cancelled, o.exceptions
    );
    if prime {
        format!(
            "<ENVELOPE>\r\n <HEADER>\r\n  <VERSION>1</VERSION>\r\n  <STATUS>1</STATUS>\r\n </HEADER>\r\n <BODY>\r\n  <DESC>\r\n  </DESC>\r\n  <DATA>\r\n{errors}<IMPORTRESULT>\r\n{counts}</IMPORTRESULT>\r\n  </DATA>\r\n </BODY>\r\n</ENVELOPE>\r\n"
        )
    } else {
        format!("<RESPONSE>\r\n{errors}{counts}</RESPONSE>\r\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulae_and_requests_are_read() {
        assert_eq!(
            parse_formula("$AlterID > 10 and $AlterID <= 20").unwrap(),
            vec![
                Clause {
                    field: "ALTERID".into(),
                    op: ">".into(),
                    value: "10".into()
                },
                Clause {
                    field: "ALTERID".into(),
                    op: "<=".into(),
                    value: "20".into()
                },
            ]
        );
        assert_eq!(parse_formula("$GUID = \"a-b\"").unwrap()[0].value, "a-b");
        assert!(parse_formula("$$IsEqual:$Name:\"x\"").is_none());
        let req = "<ENVELOPE><HEADER><VERSION>1</VERSION><TALLYREQUEST>Import Data</TALLYREQUEST></HEADER><BODY><IMPORTDATA><REQUESTDESC><REPORTNAME>Vouchers</REPORTNAME><STATICVARIABLES><SVCURRENTCOMPANY>Demo</SVCURRENTCOMPANY></STATICVARIABLES></REQUESTDESC><REQUESTDATA><TALLYMESSAGE xmlns:UDF=\"TallyUDF\"><VOUCHER REMOTEID=\"g\" VCHTYPE=\"Sales\" ACTION=\"Create\"><DATE>20261205</DATE><ALLLEDGERENTRIES.LIST><LEDGERNAME>Cash</LEDGERNAME><ISDEEMEDPOSITIVE>Yes</ISDEEMEDPOSITIVE><AMOUNT>-1.00</AMOUNT></ALLLEDGERENTRIES.LIST></VOUCHER></TALLYMESSAGE></REQUESTDATA></IMPORTDATA></BODY></ENVELOPE>";
        let e = parse(req).unwrap();
        assert_eq!(e.request(), "Import Data");
        assert_eq!(e.report(), "Vouchers");
        assert_eq!(e.company(), "Demo");
        let v = e.messages()[0].vouchers[0].to_books();
        assert_eq!(v.remote_id, "g");
        assert_eq!(
            v.all_entries,
            vec![Entry {
                ledger: "Cash".into(),
                amount: -10_000
            }]
        );
    }
}
