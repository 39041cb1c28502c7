//! Tally's XML as types: the envelopes the fleet sends (an Export of a TDL collection with
//! filters, an Import of vouchers or masters) and the answers it reads (a collection's
//! objects, an import's counts and `LINEERROR`s), with Tally's own formats: dates as
//! `YYYYMMDD` (exports may write `5-Dec-2026`), amounts signed, negative for a debit, and
//! numbers with the padding Tally puts in front of them (`<ALTERID> 12</ALTERID>`).
//!
//! Every value element carries a `TYPE` attribute in Tally's answers and may be empty; a
//! [`Text`] takes the element's whole text (entities resolved) and ignores the attribute.
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use bac_runtime::{ErrorCode, ServiceError};

// ------------------------------------------------------------------------------ formats

/// A value element's text, whatever its `TYPE`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Text {
    #[serde(rename = "$text", default)]
    pub text: String,
}

impl Text {
    /// Without padding, and without the control characters Tally puts in some values
    /// (`<PARENT>&#4; Primary</PARENT>`).
    pub fn trimmed(&self) -> &str {
        self.text
            .trim_matches(|c: char| c.is_whitespace() || c.is_control())
    }
    pub fn yes(&self) -> bool {
        self.trimmed().eq_ignore_ascii_case("yes")
    }
    pub fn number(&self) -> Option<i64> {
        self.trimmed().parse().ok()
    }
}

/// Tally's `Yes` / `No`.
pub fn yes_no(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// A date as Tally writes it: `20261205` in XML, `5-Dec-2026` or `5-Dec-26` in some
/// exports.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let short_year = s.rsplit('-').next().is_some_and(|y| y.len() == 2);
    NaiveDate::parse_from_str(s, "%Y%m%d")
        .or_else(|_| NaiveDate::parse_from_str(s, if short_year { "%d-%b-%y" } else { "%d-%b-%Y" }))
        .ok()
}

/// A date for Tally (`YYYYMMDD`).
pub fn tally_date(d: NaiveDate) -> String {
    d.format("%Y%m%d").to_string()
}

/// An amount in ten-thousandths (Tally keeps up to four decimals), signed as Tally signs it:
/// negative is a debit. Reads `-1180.00`, ` 1,180.00`, `1180.00 Dr` and `1180.00 Cr`, and a
/// foreign-currency amount's base value (`$100.00 @ ₹ 83.00/$ = ₹ 8300.00` gives 8300).
pub fn parse_amount(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    let s = s.rsplit('=').next().unwrap_or(s).trim();
    let (s, dr) = match s {
        _ if s.ends_with("Dr") => (s.trim_end_matches("Dr").trim(), Some(true)),
        _ if s.ends_with("Cr") => (s.trim_end_matches("Cr").trim(), Some(false)),
        _ => (s, None),
    };
    let cleaned: String = s
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    let negative = cleaned.starts_with('-');
    let digits = cleaned.trim_start_matches('-');
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty() || frac.len() > 4 || frac.contains('-') {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: i64 = format!("{frac:0<4}").parse().ok()?;
    let units = whole.checked_mul(10_000)?.checked_add(frac)?;
    Some(match dr {
        Some(true) => -units,
        Some(false) => units,
        None if negative => -units,
        None => units,
    })
}

/// An amount for Tally: two decimals, four when it has them.
pub fn tally_amount(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    let (whole, frac) = (abs / 10_000, abs % 10_000);
    if frac % 100 == 0 {
        format!("{sign}{whole}.{:02}", frac / 100)
    } else {
        format!("{sign}{whole}.{frac:04}")
    }
}

/// Ten-thousandths as a JSON number.
pub fn amount_value(units: i64) -> serde_json::Value {
    serde_json::json!(units as f64 / 10_000.0)
}

/// A JSON number as ten-thousandths (`None` for more than four decimals or not a number),
/// read from its decimal text: `1099910.11` is exact, not `1099910.1100000001`.
pub fn amount_units(v: &serde_json::Value) -> Option<i64> {
    let n = v.as_number()?;
    let text = n.to_string();
    if text.contains(['e', 'E']) {
        // 1e3 and the like: whole amounts or tiny fractions
        let f = n.as_f64()?;
        let units = (f * 10_000.0).round();
        return (f.is_finite() && (f * 10_000.0 - units).abs() < 1e-6 && units.abs() < 9.0e15)
            .then_some(units as i64);
    }
    parse_amount(&text)
}

/// A quantity as Tally writes it (`10 Nos`, ` 2.5 kg`): the number and its unit.
pub fn parse_quantity(s: &str) -> (Option<f64>, String) {
    let s = s.trim();
    let (n, unit) = s.split_once(' ').unwrap_or((s, ""));
    (n.replace(',', "").parse().ok(), unit.trim().to_string())
}

/// A rate as Tally writes it (`100.00/Nos`): the amount per unit.
pub fn parse_rate(s: &str) -> Option<i64> {
    parse_amount(s.split('/').next().unwrap_or(""))
}

// ------------------------------------------------------------------------------ requests

/// An envelope the fleet sends.
#[derive(Debug, Serialize)]
#[serde(rename = "ENVELOPE")]
pub struct Request {
    #[serde(rename = "HEADER")]
    pub header: RequestHeader,
    #[serde(rename = "BODY")]
    pub body: RequestBody,
}

#[derive(Debug, Serialize)]
pub struct RequestHeader {
    #[serde(rename = "VERSION")]
    pub version: u8,
    #[serde(rename = "TALLYREQUEST")]
    pub request: String,
    #[serde(rename = "TYPE", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct RequestBody {
    #[serde(rename = "DESC", skip_serializing_if = "Option::is_none")]
    pub desc: Option<Desc>,
    #[serde(rename = "IMPORTDATA", skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportData>,
}

#[derive(Debug, Default, Serialize)]
pub struct Desc {
    #[serde(rename = "STATICVARIABLES")]
    pub variables: StaticVariables,
    #[serde(rename = "TDL", skip_serializing_if = "Option::is_none")]
    pub tdl: Option<Tdl>,
}

/// The report's variables: the company the request is about, the period of vouchers.
#[derive(Debug, Default, Serialize)]
pub struct StaticVariables {
    #[serde(rename = "SVEXPORTFORMAT", skip_serializing_if = "Option::is_none")]
    pub export_format: Option<String>,
    #[serde(rename = "SVCURRENTCOMPANY", skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(rename = "SVFROMDATE", skip_serializing_if = "Option::is_none")]
    pub from_date: Option<String>,
    #[serde(rename = "SVTODATE", skip_serializing_if = "Option::is_none")]
    pub to_date: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Tdl {
    #[serde(rename = "TDLMESSAGE")]
    pub message: TdlMessage,
}

#[derive(Debug, Serialize)]
pub struct TdlMessage {
    #[serde(rename = "COLLECTION")]
    pub collection: TdlCollection,
    #[serde(rename = "SYSTEM", default, skip_serializing_if = "Vec::is_empty")]
    pub formulae: Vec<Formula>,
}

/// A collection defined in the request: objects of one type, the fields fetched, filters.
#[derive(Debug, Serialize)]
pub struct TdlCollection {
    #[serde(rename = "@NAME")]
    pub name: String,
    #[serde(rename = "@ISMODIFY")]
    pub is_modify: &'static str,
    #[serde(rename = "TYPE")]
    pub kind: String,
    #[serde(rename = "FETCH")]
    pub fetch: String,
    #[serde(rename = "FILTER", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// A named TDL formula (`<SYSTEM TYPE="Formulae" NAME="BacAfter">$AlterID > 10</SYSTEM>`).
#[derive(Debug, Serialize)]
pub struct Formula {
    #[serde(rename = "@TYPE")]
    pub kind: &'static str,
    #[serde(rename = "@NAME")]
    pub name: String,
    #[serde(rename = "$text")]
    pub text: String,
}

/// The export of a collection of `object_type` objects of `company`, filtered by one formula.
pub fn export_collection(
    company: Option<&str>,
    object_type: &str,
    fetch: &[&str],
    filter: Option<&str>,
    period: Option<(NaiveDate, NaiveDate)>,
) -> String {
    let name = format!("Bac{}", object_type.replace(' ', ""));
    let request = Request {
        header: RequestHeader {
            version: 1,
            request: "Export".into(),
            kind: Some("Collection".into()),
            id: Some(name.clone()),
        },
        body: RequestBody {
            desc: Some(Desc {
                variables: StaticVariables {
                    export_format: Some("$$SysName:XML".into()),
                    company: company.map(str::to_string),
                    from_date: period.map(|(f, _)| tally_date(f)),
                    to_date: period.map(|(_, t)| tally_date(t)),
                },
                tdl: Some(Tdl {
                    message: TdlMessage {
                        collection: TdlCollection {
                            name,
                            is_modify: "No",
                            kind: object_type.into(),
                            fetch: fetch.join(", "),
                            filter: filter.map(|_| "BacFilter".to_string()),
                        },
                        formulae: filter
                            .map(|f| Formula {
                                kind: "Formulae",
                                name: "BacFilter".into(),
                                text: f.into(),
                            })
                            .into_iter()
                            .collect(),
                    },
                }),
            }),
            import: None,
        },
    };
    to_xml(&request)
}

#[derive(Debug, Serialize)]
pub struct ImportData {
    #[serde(rename = "REQUESTDESC")]
    pub desc: ImportDesc,
    #[serde(rename = "REQUESTDATA")]
    pub data: ImportRequestData,
}

#[derive(Debug, Serialize)]
pub struct ImportDesc {
    /// `Vouchers` or `All Masters`.
    #[serde(rename = "REPORTNAME")]
    pub report: &'static str,
    #[serde(rename = "STATICVARIABLES")]
    pub variables: StaticVariables,
}

#[derive(Debug, Serialize)]
pub struct ImportRequestData {
    #[serde(rename = "TALLYMESSAGE")]
    pub messages: Vec<TallyMessage>,
}

#[derive(Debug, Default, Serialize)]
pub struct TallyMessage {
    #[serde(rename = "@xmlns:UDF")]
    pub udf: &'static str,
    #[serde(rename = "VOUCHER", skip_serializing_if = "Option::is_none")]
    pub voucher: Option<VoucherOut>,
    #[serde(rename = "LEDGER", skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerOut>,
}

/// A voucher as the fleet imports it. `REMOTEID` is the GUID the fleet gives a voucher it
/// creates; an alteration or deletion names the voucher by its `MASTERID`.
#[derive(Debug, Default, Serialize)]
pub struct VoucherOut {
    #[serde(rename = "@REMOTEID", skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    #[serde(rename = "@DATE", skip_serializing_if = "Option::is_none")]
    pub date_attr: Option<String>,
    #[serde(rename = "@TAGNAME", skip_serializing_if = "Option::is_none")]
    pub tag_name: Option<&'static str>,
    #[serde(rename = "@TAGVALUE", skip_serializing_if = "Option::is_none")]
    pub tag_value: Option<String>,
    #[serde(rename = "@VCHTYPE")]
    pub vch_type: String,
    #[serde(rename = "@ACTION")]
    pub action: &'static str,
    /// The same GUID as an element: which of the two a Tally build keeps is not documented.
    #[serde(rename = "GUID", skip_serializing_if = "Option::is_none")]
    pub guid: Option<String>,
    #[serde(rename = "DATE", skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(rename = "VOUCHERTYPENAME", skip_serializing_if = "Option::is_none")]
    pub voucher_type: Option<String>,
    #[serde(rename = "VOUCHERNUMBER", skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(rename = "REFERENCE", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(rename = "PARTYLEDGERNAME", skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
    #[serde(rename = "NARRATION", skip_serializing_if = "Option::is_none")]
    pub narration: Option<String>,
    #[serde(rename = "ISINVOICE", skip_serializing_if = "Option::is_none")]
    pub is_invoice: Option<&'static str>,
    #[serde(rename = "ALLINVENTORYENTRIES.LIST", default)]
    pub inventory: Vec<InventoryEntryOut>,
    /// An accounting voucher's entries (a journal sent in the other list creates nothing).
    #[serde(rename = "ALLLEDGERENTRIES.LIST", default)]
    pub ledgers: Vec<LedgerEntryOut>,
    /// An invoice's ledger entries (beside its inventory entries).
    #[serde(rename = "LEDGERENTRIES.LIST", default)]
    pub invoice_ledgers: Vec<LedgerEntryOut>,
}

#[derive(Debug, Default, Serialize)]
pub struct LedgerEntryOut {
    #[serde(rename = "LEDGERNAME")]
    pub ledger: String,
    #[serde(rename = "ISDEEMEDPOSITIVE")]
    pub deemed_positive: &'static str,
    #[serde(rename = "ISPARTYLEDGER", skip_serializing_if = "Option::is_none")]
    pub is_party: Option<&'static str>,
    #[serde(rename = "AMOUNT")]
    pub amount: String,
}

#[derive(Debug, Default, Serialize)]
pub struct InventoryEntryOut {
    #[serde(rename = "STOCKITEMNAME")]
    pub item: String,
    #[serde(rename = "ISDEEMEDPOSITIVE")]
    pub deemed_positive: &'static str,
    #[serde(rename = "RATE", skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    #[serde(rename = "AMOUNT")]
    pub amount: String,
    #[serde(rename = "ACTUALQTY", skip_serializing_if = "Option::is_none")]
    pub actual_qty: Option<String>,
    #[serde(rename = "BILLEDQTY", skip_serializing_if = "Option::is_none")]
    pub billed_qty: Option<String>,
    #[serde(rename = "ACCOUNTINGALLOCATIONS.LIST", default)]
    pub allocations: Vec<LedgerEntryOut>,
}

/// A ledger master as the fleet imports it; `NAME` is the name it has now, `NAME.LIST` the
/// name it gets (a rename).
#[derive(Debug, Default, Serialize)]
pub struct LedgerOut {
    #[serde(rename = "@NAME")]
    pub name: String,
    #[serde(rename = "@REMOTEID", skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    #[serde(rename = "@ACTION")]
    pub action: &'static str,
    #[serde(rename = "NAME.LIST", skip_serializing_if = "Option::is_none")]
    pub names: Option<NameList>,
    #[serde(rename = "PARENT", skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(rename = "OPENINGBALANCE", skip_serializing_if = "Option::is_none")]
    pub opening_balance: Option<String>,
    #[serde(rename = "EMAIL", skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(rename = "LEDGERPHONE", skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct NameList {
    #[serde(rename = "NAME")]
    pub names: Vec<String>,
}

/// The import of one message into `company`'s `report` (`Vouchers` or `All Masters`).
pub fn import(company: &str, report: &'static str, message: TallyMessage) -> String {
    let request = Request {
        header: RequestHeader {
            version: 1,
            request: "Import Data".into(),
            kind: None,
            id: None,
        },
        body: RequestBody {
            desc: None,
            import: Some(ImportData {
                desc: ImportDesc {
                    report,
                    variables: StaticVariables {
                        company: Some(company.into()),
                        ..StaticVariables::default()
                    },
                },
                data: ImportRequestData {
                    messages: vec![TallyMessage {
                        udf: "TallyUDF",
                        ..message
                    }],
                },
            }),
        },
    };
    to_xml(&request)
}

fn to_xml<T: Serialize>(v: &T) -> String {
    // Serializing these types cannot fail: every field is a string, a number or a list.
    quick_xml::se::to_string(v).unwrap_or_default()
}

// ------------------------------------------------------------------------------ answers

/// Any envelope Tally answers: a collection, an import's result, or a refusal.
#[derive(Debug, Default, Deserialize)]
pub struct Answer {
    #[serde(rename = "HEADER", default)]
    pub header: AnswerHeader,
    #[serde(rename = "BODY", default)]
    pub body: AnswerBody,
}

#[derive(Debug, Default, Deserialize)]
pub struct AnswerHeader {
    #[serde(rename = "STATUS", default)]
    pub status: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AnswerBody {
    #[serde(rename = "DATA", default)]
    pub data: AnswerData,
}

#[derive(Debug, Default, Deserialize)]
pub struct AnswerData {
    #[serde(rename = "COLLECTION", default)]
    pub collection: Collection,
    #[serde(rename = "IMPORTRESULT", default)]
    pub import: Option<ImportResult>,
    #[serde(rename = "LINEERROR", default)]
    pub line_errors: Vec<Text>,
}

/// A collection's objects (one kind per request).
#[derive(Debug, Default, Deserialize)]
pub struct Collection {
    #[serde(rename = "COMPANY", default)]
    pub companies: Vec<CompanyIn>,
    #[serde(rename = "GROUP", default)]
    pub groups: Vec<GroupIn>,
    #[serde(rename = "LEDGER", default)]
    pub ledgers: Vec<LedgerIn>,
    #[serde(rename = "COSTCENTRE", default)]
    pub cost_centres: Vec<CostCentreIn>,
    #[serde(rename = "STOCKITEM", default)]
    pub stock_items: Vec<StockItemIn>,
    #[serde(rename = "VOUCHER", default)]
    pub vouchers: Vec<VoucherIn>,
}

/// Declares an object of a collection with what every master and voucher has: its name
/// (the `NAME` attribute, or a `NAME` element), `GUID`, `MASTERID` and `ALTERID`.
/// (Written out per type: serde's `flatten` loses quick-xml's text elements.)
macro_rules! tally_object {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default, Deserialize)]
        pub struct $name {
            #[serde(rename = "@NAME", default)]
            pub name_attr: String,
            #[serde(rename = "NAME", default)]
            pub name_elem: Text,
            #[serde(rename = "GUID", default)]
            pub guid: Text,
            #[serde(rename = "MASTERID", default)]
            pub master_id: Text,
            #[serde(rename = "ALTERID", default)]
            pub alter_id: Text,
            $($(#[$fm])* pub $field: $ty,)*
        }

        impl $name {
            /// The `NAME` attribute, else the `NAME` element.
            pub fn name(&self) -> String {
                let a = self.name_attr.trim();
                if a.is_empty() {
                    self.name_elem.trimmed().to_string()
                } else {
                    a.to_string()
                }
            }
        }
    };
}

tally_object!(CompanyIn {
    #[serde(rename = "STARTINGFROM", default)]
    starting_from: Text,
    /// The last ALTERID given to a master / a voucher.
    #[serde(rename = "ALTMSTID", default)]
    alt_mst_id: Text,
    #[serde(rename = "ALTVCHID", default)]
    alt_vch_id: Text,
});

tally_object!(GroupIn {
    #[serde(rename = "PARENT", default)]
    parent: Text,
    #[serde(rename = "ISREVENUE", default)]
    is_revenue: Text,
    #[serde(rename = "ISDEEMEDPOSITIVE", default)]
    deemed_positive: Text,
});

tally_object!(LedgerIn {
    #[serde(rename = "PARENT", default)]
    parent: Text,
    #[serde(rename = "OPENINGBALANCE", default)]
    opening_balance: Text,
    #[serde(rename = "CLOSINGBALANCE", default)]
    closing_balance: Text,
    #[serde(rename = "EMAIL", default)]
    email: Text,
    #[serde(rename = "LEDGERPHONE", default)]
    phone: Text,
});

tally_object!(CostCentreIn {
    #[serde(rename = "PARENT", default)]
    parent: Text,
    #[serde(rename = "CATEGORY", default)]
    category: Text,
});

tally_object!(StockItemIn {
    #[serde(rename = "PARENT", default)]
    parent: Text,
    #[serde(rename = "BASEUNITS", default)]
    base_units: Text,
    #[serde(rename = "OPENINGBALANCE", default)]
    opening_balance: Text,
    #[serde(rename = "OPENINGVALUE", default)]
    opening_value: Text,
    #[serde(rename = "OPENINGRATE", default)]
    opening_rate: Text,
    #[serde(rename = "CLOSINGBALANCE", default)]
    closing_balance: Text,
    #[serde(rename = "CLOSINGVALUE", default)]
    closing_value: Text,
});

tally_object!(VoucherIn {
    #[serde(rename = "@VCHTYPE", default)]
    vch_type: String,
    #[serde(rename = "DATE", default)]
    date: Text,
    #[serde(rename = "VOUCHERTYPENAME", default)]
    voucher_type: Text,
    #[serde(rename = "VOUCHERNUMBER", default)]
    number: Text,
    #[serde(rename = "REFERENCE", default)]
    reference: Text,
    #[serde(rename = "PARTYLEDGERNAME", default)]
    party: Text,
    #[serde(rename = "NARRATION", default)]
    narration: Text,
    #[serde(rename = "ISCANCELLED", default)]
    cancelled: Text,
    #[serde(rename = "ISOPTIONAL", default)]
    optional: Text,
    /// Accounting-view vouchers list every entry here.
    #[serde(rename = "ALLLEDGERENTRIES.LIST", default)]
    all_ledger_entries: Vec<LedgerEntryIn>,
    /// Invoice-view vouchers list their ledger entries here.
    #[serde(rename = "LEDGERENTRIES.LIST", default)]
    ledger_entries: Vec<LedgerEntryIn>,
    #[serde(rename = "ALLINVENTORYENTRIES.LIST", default)]
    inventory_entries: Vec<InventoryEntryIn>,
    #[serde(rename = "INVENTORYENTRIES.LIST", default)]
    inventory_entries_old: Vec<InventoryEntryIn>,
});

#[derive(Debug, Default, Deserialize)]
pub struct LedgerEntryIn {
    #[serde(rename = "LEDGERNAME", default)]
    pub ledger: Text,
    #[serde(rename = "ISDEEMEDPOSITIVE", default)]
    pub deemed_positive: Text,
    #[serde(rename = "AMOUNT", default)]
    pub amount: Text,
}

#[derive(Debug, Default, Deserialize)]
pub struct InventoryEntryIn {
    #[serde(rename = "STOCKITEMNAME", default)]
    pub item: Text,
    #[serde(rename = "RATE", default)]
    pub rate: Text,
    #[serde(rename = "AMOUNT", default)]
    pub amount: Text,
    #[serde(rename = "ACTUALQTY", default)]
    pub actual_qty: Text,
    #[serde(rename = "BILLEDQTY", default)]
    pub billed_qty: Text,
    #[serde(rename = "ACCOUNTINGALLOCATIONS.LIST", default)]
    pub allocations: Vec<LedgerEntryIn>,
}

/// What an import did: Tally's counts and its line errors.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ImportResult {
    #[serde(rename = "CREATED", default)]
    pub created: Text,
    #[serde(rename = "ALTERED", default)]
    pub altered: Text,
    #[serde(rename = "DELETED", default)]
    pub deleted: Text,
    #[serde(rename = "CANCELLED", default)]
    pub cancelled: Text,
    #[serde(rename = "IGNORED", default)]
    pub ignored: Text,
    #[serde(rename = "ERRORS", default)]
    pub errors: Text,
    #[serde(rename = "EXCEPTIONS", default)]
    pub exceptions: Text,
    #[serde(rename = "LASTVCHID", default)]
    pub last_voucher_id: Text,
    #[serde(rename = "LASTMID", default)]
    pub last_master_id: Text,
    #[serde(rename = "LINEERROR", default)]
    pub line_errors: Vec<Text>,
}

impl ImportResult {
    pub fn count(t: &Text) -> i64 {
        t.number().unwrap_or(0)
    }
}

fn refused(what: &str, why: impl std::fmt::Display) -> ServiceError {
    ServiceError::new(
        "tally",
        ErrorCode::UpstreamRejected,
        format!("Tally's answer is not {what}: {why}"),
    )
}

/// Tally refusing a request, in Tally's words (its `LINEERROR`s).
pub fn line_error(errors: &[Text]) -> Option<ServiceError> {
    let lines: Vec<&str> = errors
        .iter()
        .map(Text::trimmed)
        .filter(|l| !l.is_empty())
        .collect();
    (!lines.is_empty()).then(|| {
        ServiceError::new(
            "tally",
            ErrorCode::UpstreamRejected,
            format!("Tally refused the request: {}", lines.join("; ")),
        )
    })
}

/// Tally's text made well-formed XML: Tally writes a bare `&` in names (`R&D`) and control
/// characters as references (`&#4;`) that XML 1.0 does not allow; both are read as text.
pub fn well_formed(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('&') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest[1..].find(';').map(|e| e + 1).filter(|e| *e <= 10);
        let reference = end.map(|e| &rest[1..e]);
        let kept = match reference {
            Some("amp" | "lt" | "gt" | "quot" | "apos") => true,
            Some(r) if r.starts_with('#') => {
                let n = r
                    .strip_prefix("#x")
                    .map(|h| u32::from_str_radix(h, 16))
                    .unwrap_or_else(|| r[1..].parse());
                match n {
                    // a control character XML does not allow: dropped
                    Ok(n) if n < 0x20 && ![0x9, 0xA, 0xD].contains(&n) => {
                        rest = &rest[end.unwrap_or(0) + 1..];
                        continue;
                    }
                    Ok(_) => true,
                    Err(_) => false,
                }
            }
            _ => false,
        };
        if kept {
            let e = end.unwrap_or(0);
            out.push_str(&rest[..=e]);
            rest = &rest[e + 1..];
        } else {
            out.push_str("&amp;");
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// The root element's name.
fn root(text: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                return Some(String::from_utf8_lossy(e.name().as_ref()).to_ascii_uppercase())
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

/// A collection export's answer; `LINEERROR` or `STATUS -1` are Tally refusing (a `STATUS`
/// of 0 without a line error is how some Tally builds answer an empty collection).
pub fn parse_collection(text: &str) -> Result<Collection, ServiceError> {
    let text = well_formed(text);
    if root(&text).as_deref() != Some("ENVELOPE") {
        return Err(refused("a collection", "no ENVELOPE"));
    }
    let answer: Answer = quick_xml::de::from_str(&text).map_err(|e| refused("a collection", e))?;
    if let Some(e) = line_error(&answer.body.data.line_errors) {
        return Err(e);
    }
    if answer
        .header
        .status
        .as_ref()
        .is_some_and(|s| s.trimmed() == "-1")
    {
        return Err(ServiceError::new(
            "tally",
            ErrorCode::UpstreamRejected,
            "Tally refused the request (status -1)",
        ));
    }
    Ok(answer.body.data.collection)
}

/// An import's answer: `<RESPONSE>` (Tally.ERP 9, and TallyPrime to the `Import Data`
/// request) or an envelope with `<IMPORTRESULT>` (TallyPrime's newer form). Line errors are
/// returned with the counts; the caller decides.
pub fn parse_import(text: &str) -> Result<ImportResult, ServiceError> {
    let text = well_formed(text);
    match root(&text).as_deref() {
        Some("RESPONSE") => {
            quick_xml::de::from_str(&text).map_err(|e| refused("an import result", e))
        }
        Some("ENVELOPE") => {
            let answer: Answer =
                quick_xml::de::from_str(&text).map_err(|e| refused("an import result", e))?;
            let mut result = answer.body.data.import.unwrap_or_default();
            result.line_errors.extend(answer.body.data.line_errors);
            if result.line_errors.is_empty()
                && answer
                    .header
                    .status
                    .as_ref()
                    .is_some_and(|s| s.trimmed() != "1")
            {
                result.line_errors.push(Text {
                    text: "the import was not done (status other than 1, no line error)".into(),
                });
            }
            Ok(result)
        }
        _ => Err(refused("an import result", "neither RESPONSE nor ENVELOPE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_read_as_tally_writes_them() {
        assert_eq!(parse_date("20261205"), NaiveDate::from_ymd_opt(2026, 12, 5));
        assert_eq!(
            parse_date("5-Dec-2026"),
            NaiveDate::from_ymd_opt(2026, 12, 5)
        );
        assert_eq!(
            parse_date("05-Dec-26"),
            NaiveDate::from_ymd_opt(2026, 12, 5)
        );
        assert_eq!(parse_date("2026-12-05x"), None);
        assert_eq!(parse_amount("-1180.00"), Some(-11_800_000));
        assert_eq!(parse_amount(" 1,180.50"), Some(11_805_000));
        assert_eq!(parse_amount("1180.00 Dr"), Some(-11_800_000));
        assert_eq!(parse_amount("1180 Cr"), Some(11_800_000));
        assert_eq!(parse_amount(""), Some(0));
        assert_eq!(parse_amount("0.12345"), None);
        assert_eq!(parse_amount("abc"), None);
        assert_eq!(
            parse_amount("-$100.00 @ ₹ 83.00/$ = -₹ 8300.00"),
            Some(-83_000_000)
        );
        assert_eq!(tally_amount(-11_800_000), "-1180.00");
        assert_eq!(tally_amount(12_345), "1.2345");
        assert_eq!(amount_units(&serde_json::json!(1180.5)), Some(11_805_000));
        assert_eq!(amount_units(&serde_json::json!(0.00001)), None);
        assert_eq!(
            amount_units(&serde_json::json!(1099910.11)),
            Some(10_999_101_100)
        );
        assert_eq!(amount_units(&serde_json::json!(42)), Some(420_000));
        assert_eq!(parse_quantity(" 10 Nos"), (Some(10.0), "Nos".into()));
        assert_eq!(parse_rate("100.00/Nos"), Some(1_000_000));
    }

    #[test]
    fn an_export_request_is_the_envelope_tally_reads() {
        let xml = export_collection(
            Some("R&D India"),
            "Ledger",
            &["GUID", "ALTERID"],
            Some("$AlterID > 10 AND $AlterID <= 20"),
            None,
        );
        assert_eq!(
            xml,
            "<ENVELOPE><HEADER><VERSION>1</VERSION><TALLYREQUEST>Export</TALLYREQUEST><TYPE>Collection</TYPE><ID>BacLedger</ID></HEADER>\
<BODY><DESC><STATICVARIABLES><SVEXPORTFORMAT>$$SysName:XML</SVEXPORTFORMAT><SVCURRENTCOMPANY>R&amp;D India</SVCURRENTCOMPANY></STATICVARIABLES>\
<TDL><TDLMESSAGE><COLLECTION NAME=\"BacLedger\" ISMODIFY=\"No\"><TYPE>Ledger</TYPE><FETCH>GUID, ALTERID</FETCH><FILTER>BacFilter</FILTER></COLLECTION>\
<SYSTEM TYPE=\"Formulae\" NAME=\"BacFilter\">$AlterID &gt; 10 AND $AlterID &lt;= 20</SYSTEM></TDLMESSAGE></TDL></DESC></BODY></ENVELOPE>"
        );
    }

    #[test]
    fn a_collection_answer_is_read_whole() {
        let xml = "<ENVELOPE><HEADER><VERSION>1</VERSION><STATUS>1</STATUS></HEADER><BODY><DESC></DESC><DATA><COLLECTION>\
<VOUCHER REMOTEID=\"r\" VCHTYPE=\"Sales\" ACTION=\"Create\"><DATE TYPE=\"Date\">20261205</DATE><GUID TYPE=\"String\">g-1</GUID>\
<NARRATION TYPE=\"String\">R&amp;D &lt;kit&gt;</NARRATION><VOUCHERTYPENAME>Sales</VOUCHERTYPENAME><ALTERID TYPE=\"Number\"> 12</ALTERID>\
<ALLINVENTORYENTRIES.LIST><STOCKITEMNAME>Widget</STOCKITEMNAME><RATE>100.00/Nos</RATE><AMOUNT>1000.00</AMOUNT><ACTUALQTY> 10 Nos</ACTUALQTY>\
<ACCOUNTINGALLOCATIONS.LIST><LEDGERNAME>Sales</LEDGERNAME><AMOUNT>1000.00</AMOUNT></ACCOUNTINGALLOCATIONS.LIST></ALLINVENTORYENTRIES.LIST>\
<LEDGERENTRIES.LIST><LEDGERNAME>Acme</LEDGERNAME><ISDEEMEDPOSITIVE>Yes</ISDEEMEDPOSITIVE><AMOUNT>-1000.00</AMOUNT></LEDGERENTRIES.LIST>\
<LEDGERENTRIES.LIST>  </LEDGERENTRIES.LIST><UDF:BACINTENT.LIST xmlns:UDF=\"TallyUDF\"/>\
</VOUCHER></COLLECTION></DATA></BODY></ENVELOPE>";
        let c = parse_collection(xml).unwrap();
        let v = &c.vouchers[0];
        assert_eq!(v.guid.trimmed(), "g-1");
        assert_eq!(v.alter_id.number(), Some(12));
        assert_eq!(v.narration.trimmed(), "R&D <kit>");
        assert_eq!(v.ledger_entries.len(), 2);
        assert_eq!(
            v.inventory_entries[0].allocations[0].ledger.trimmed(),
            "Sales"
        );
        let refused = "<ENVELOPE><HEADER><VERSION>1</VERSION><STATUS>0</STATUS></HEADER><BODY><DATA><LINEERROR>Could not set 'SVCurrentCompany' to 'X'</LINEERROR></DATA></BODY></ENVELOPE>";
        assert!(parse_collection(refused)
            .unwrap_err()
            .message
            .contains("Could not set 'SVCurrentCompany' to 'X'"));
        assert!(parse_collection("<RESPONSE>Unknown</RESPONSE>").is_err());
    }

    #[test]
    fn tallys_loose_xml_is_read() {
        assert_eq!(
            well_formed("R&D &amp; &#4; Primary &#x41;&lt;"),
            "R&amp;D &amp;  Primary &#x41;&lt;"
        );
        let xml = "<ENVELOPE><HEADER><STATUS>0</STATUS></HEADER><BODY><DATA><COLLECTION><GROUP NAME=\"R&D\"><GUID>g</GUID><PARENT>&#4; Primary</PARENT></GROUP></COLLECTION></DATA></BODY></ENVELOPE>";
        let c = parse_collection(xml).unwrap();
        assert_eq!(c.groups[0].name(), "R&D");
        assert_eq!(c.groups[0].parent.trimmed(), "Primary");
        let empty = "<ENVELOPE><HEADER><VERSION>1</VERSION><STATUS>0</STATUS></HEADER><BODY><DESC/><DATA/></BODY></ENVELOPE>";
        assert!(parse_collection(empty).unwrap().vouchers.is_empty());
    }

    #[test]
    fn import_answers_of_both_forms_are_read() {
        let old = "<RESPONSE><LINEERROR>Ledger 'Nope' does not exist!</LINEERROR><CREATED>0</CREATED><ALTERED>0</ALTERED><ERRORS>1</ERRORS><LASTVCHID>0</LASTVCHID></RESPONSE>";
        let r = parse_import(old).unwrap();
        assert_eq!(ImportResult::count(&r.errors), 1);
        assert!(line_error(&r.line_errors)
            .unwrap()
            .message
            .contains("Ledger 'Nope' does not exist!"));
        let prime = "<ENVELOPE><HEADER><VERSION>1</VERSION><STATUS>1</STATUS></HEADER><BODY><DESC></DESC><DATA><IMPORTRESULT><CREATED>1</CREATED><ALTERED>0</ALTERED><LASTVCHID> 57</LASTVCHID><ERRORS>0</ERRORS></IMPORTRESULT></DATA></BODY></ENVELOPE>";
        let r = parse_import(prime).unwrap();
        assert_eq!(ImportResult::count(&r.created), 1);
        assert_eq!(r.last_voucher_id.number(), Some(57));
        assert!(r.line_errors.is_empty());
    }

    #[test]
    fn an_import_request_names_the_company_and_the_voucher() {
        let xml = import(
            "Demo",
            "Vouchers",
            TallyMessage {
                voucher: Some(VoucherOut {
                    remote_id: Some("g".into()),
                    vch_type: "Sales".into(),
                    action: "Create",
                    date: Some("20261205".into()),
                    ledgers: vec![LedgerEntryOut {
                        ledger: "Cash".into(),
                        deemed_positive: "Yes",
                        is_party: None,
                        amount: tally_amount(-10_000),
                    }],
                    ..VoucherOut::default()
                }),
                ..TallyMessage::default()
            },
        );
        assert!(xml.starts_with("<ENVELOPE><HEADER><VERSION>1</VERSION><TALLYREQUEST>Import Data</TALLYREQUEST></HEADER><BODY><IMPORTDATA><REQUESTDESC><REPORTNAME>Vouchers</REPORTNAME><STATICVARIABLES><SVCURRENTCOMPANY>Demo</SVCURRENTCOMPANY></STATICVARIABLES></REQUESTDESC>"), "{xml}");
        assert!(xml.contains("<TALLYMESSAGE xmlns:UDF=\"TallyUDF\"><VOUCHER REMOTEID=\"g\" VCHTYPE=\"Sales\" ACTION=\"Create\"><DATE>20261205</DATE><ALLLEDGERENTRIES.LIST><LEDGERNAME>Cash</LEDGERNAME><ISDEEMEDPOSITIVE>Yes</ISDEEMEDPOSITIVE><AMOUNT>-1.00</AMOUNT></ALLLEDGERENTRIES.LIST></VOUCHER></TALLYMESSAGE>"), "{xml}");
    }
}
