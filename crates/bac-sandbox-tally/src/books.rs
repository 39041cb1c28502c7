//! A company's books as Tally keeps them: masters (groups, ledgers, cost centres, stock
//! items) and vouchers, each with its GUID, `MASTERID` and `ALTERID`. Every creation or
//! alteration takes the company's next ALTERID (one sequence for masters and vouchers), and
//! the company remembers the last one given to each (`$AltMstId`, `$AltVchId`). Imports
//! are checked as Tally checks them and refused with Tally's own line errors.
use std::collections::{BTreeMap, HashMap};

/// Amounts in ten-thousandths, signed as Tally signs them (negative is a debit).
pub type Units = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Group,
    Ledger,
    CostCentre,
    StockItem,
    Voucher,
}

impl Kind {
    /// A collection's `TYPE` (`Ledger`, `Stock Item`, `StockItem`...).
    pub fn parse(s: &str) -> Option<Kind> {
        match s.replace(' ', "").to_ascii_lowercase().as_str() {
            "group" => Some(Kind::Group),
            "ledger" => Some(Kind::Ledger),
            "costcentre" | "costcenter" => Some(Kind::CostCentre),
            "stockitem" => Some(Kind::StockItem),
            "voucher" => Some(Kind::Voucher),
            _ => None,
        }
    }

    /// The element an object of this kind is written as.
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Group => "GROUP",
            Kind::Ledger => "LEDGER",
            Kind::CostCentre => "COSTCENTRE",
            Kind::StockItem => "STOCKITEM",
            Kind::Voucher => "VOUCHER",
        }
    }

    /// How Tally names the kind in its messages.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Group => "Group",
            Kind::Ledger => "Ledger",
            Kind::CostCentre => "Cost Centre",
            Kind::StockItem => "Stock Item",
            Kind::Voucher => "Voucher",
        }
    }

    /// The scalar fields an object of this kind has (what a `FETCH` may name).
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Group => &[
                "NAME",
                "GUID",
                "MASTERID",
                "ALTERID",
                "PARENT",
                "ISREVENUE",
                "ISDEEMEDPOSITIVE",
            ],
            Kind::Ledger => &[
                "NAME",
                "GUID",
                "MASTERID",
                "ALTERID",
                "PARENT",
                "OPENINGBALANCE",
                "CLOSINGBALANCE",
                "EMAIL",
                "LEDGERPHONE",
            ],
            Kind::CostCentre => &["NAME", "GUID", "MASTERID", "ALTERID", "PARENT", "CATEGORY"],
            Kind::StockItem => &[
                "NAME",
                "GUID",
                "MASTERID",
                "ALTERID",
                "PARENT",
                "BASEUNITS",
                "OPENINGBALANCE",
                "OPENINGVALUE",
                "OPENINGRATE",
                "CLOSINGBALANCE",
                "CLOSINGVALUE",
            ],
            Kind::Voucher => &[
                "GUID",
                "MASTERID",
                "ALTERID",
                "DATE",
                "VOUCHERTYPENAME",
                "VOUCHERNUMBER",
                "REFERENCE",
                "PARTYLEDGERNAME",
                "NARRATION",
                "ISCANCELLED",
                "ISOPTIONAL",
            ],
        }
    }
}

/// A ledger entry, or an inventory entry's accounting allocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub ledger: String,
    pub amount: Units,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InventoryEntry {
    pub item: String,
    /// `10 Nos`
    pub quantity: String,
    /// `100.00/Nos`
    pub rate: String,
    pub amount: Units,
    pub allocations: Vec<Entry>,
}

/// A master or a voucher.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub kind: Kind,
    pub guid: String,
    pub master_id: i64,
    pub alter_id: i64,
    /// Masters: the name. Vouchers: empty.
    pub name: String,
    /// Scalar fields by their Tally names (`PARENT`, `DATE`, `VOUCHERTYPENAME`...).
    pub fields: BTreeMap<String, String>,
    pub entries: Vec<Entry>,
    pub inventory: Vec<InventoryEntry>,
    /// Vouchers: entered in invoice view (entries listed as `LEDGERENTRIES.LIST`).
    pub invoice: bool,
}

impl Object {
    pub fn field(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or("")
    }
}

/// One company's books.
#[derive(Debug, Clone)]
pub struct Books {
    pub name: String,
    pub guid: String,
    /// `YYYYMMDD`
    pub starting_from: String,
    pub open: bool,
    pub objects: Vec<Object>,
    pub last_alter_id: i64,
    pub last_master_id: i64,
    pub alt_mst_id: i64,
    pub alt_vch_id: i64,
    /// Vouchers the imports created, and altered (what a test counts).
    pub imported_created: u64,
    pub imported_altered: u64,
    /// Lower-case GUID -> position in `objects`.
    by_guid: HashMap<String, usize>,
    /// (kind, lower-case name) -> position, for masters.
    by_name: HashMap<(Kind, String), usize>,
    /// The last number each voucher type gave.
    numbers: HashMap<String, u64>,
}

/// The voucher types a new company has.
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

/// What one import message did, or Tally's line error.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub created: u64,
    pub altered: u64,
    pub deleted: u64,
    pub cancelled: u64,
    pub errors: u64,
    pub exceptions: u64,
    pub line_errors: Vec<String>,
    pub last_voucher_id: i64,
    pub last_master_id: i64,
}

impl Outcome {
    pub fn add(&mut self, o: Outcome) {
        self.created += o.created;
        self.altered += o.altered;
        self.deleted += o.deleted;
        self.cancelled += o.cancelled;
        self.errors += o.errors;
        self.exceptions += o.exceptions;
        self.line_errors.extend(o.line_errors);
        self.last_voucher_id = self.last_voucher_id.max(o.last_voucher_id);
        self.last_master_id = self.last_master_id.max(o.last_master_id);
    }

    fn error(msg: impl Into<String>) -> Outcome {
        Outcome {
            errors: 1,
            line_errors: vec![msg.into()],
            ..Outcome::default()
        }
    }
}

/// A voucher as an import describes it.
#[derive(Debug, Clone, Default)]
pub struct VoucherIn {
    pub action: String,
    pub remote_id: String,
    pub vch_type: String,
    pub date_attr: String,
    pub tag_name: String,
    pub tag_value: String,
    pub fields: BTreeMap<String, String>,
    pub all_entries: Vec<Entry>,
    pub invoice_entries: Vec<Entry>,
    pub inventory: Vec<InventoryEntry>,
}

/// A ledger as an import describes it.
#[derive(Debug, Clone, Default)]
pub struct LedgerIn {
    pub action: String,
    pub name_attr: String,
    pub new_names: Vec<String>,
    pub remote_id: String,
    pub fields: BTreeMap<String, String>,
}

pub fn fmt_amount(u: Units) -> String {
    let sign = if u < 0 { "-" } else { "" };
    let a = u.unsigned_abs();
    if a.is_multiple_of(100) {
        format!("{sign}{}.{:02}", a / 10_000, (a % 10_000) / 100)
    } else {
        format!("{sign}{}.{:04}", a / 10_000, a % 10_000)
    }
}

pub fn parse_amount(s: &str) -> Option<Units> {
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    let neg = s.starts_with('-');
    let digits = s.trim_start_matches('-').replace(',', "");
    let (w, f) = digits.split_once('.').unwrap_or((&digits, ""));
    if f.len() > 4
        || !w.bytes().all(|b| b.is_ascii_digit())
        || !f.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if w.is_empty() { 0 } else { w.parse().ok()? };
    let u = whole
        .checked_mul(10_000)?
        .checked_add(format!("{f:0<4}").parse::<i64>().ok()?)?;
    Some(if neg { -u } else { u })
}

impl Books {
    pub fn new(name: &str, guid: &str, starting_from: &str) -> Books {
        Books {
            name: name.into(),
            guid: guid.into(),
            starting_from: starting_from.into(),
            open: true,
            objects: Vec::new(),
            last_alter_id: 0,
            last_master_id: 0,
            alt_mst_id: 0,
            alt_vch_id: 0,
            imported_created: 0,
            imported_altered: 0,
            by_guid: HashMap::new(),
            by_name: HashMap::new(),
            numbers: HashMap::new(),
        }
    }

    fn push(&mut self, o: Object) {
        let i = self.objects.len();
        self.by_guid.insert(o.guid.to_lowercase(), i);
        if o.kind != Kind::Voucher {
            self.by_name.insert((o.kind, o.name.to_lowercase()), i);
        }
        self.objects.push(o);
    }

    /// Removes the object at `i`.
    pub fn remove(&mut self, i: usize) -> Object {
        let o = self.objects.remove(i);
        self.reindex();
        o
    }

    /// Rebuilds the indexes after objects moved or were renamed.
    pub fn reindex(&mut self) {
        self.by_guid = self
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.guid.to_lowercase(), i))
            .collect();
        self.by_name = self
            .objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o.kind != Kind::Voucher)
            .map(|(i, o)| ((o.kind, o.name.to_lowercase()), i))
            .collect();
    }

    /// A company with Tally's primary groups and a few masters and vouchers to read.
    pub fn demo(name: &str, guid: &str) -> Books {
        let mut b = Books::new(name, guid, "20240401");
        for (g, revenue, positive) in [
            ("Capital Account", false, false),
            ("Current Assets", false, true),
            ("Current Liabilities", false, false),
            ("Sundry Debtors", false, true),
            ("Sundry Creditors", false, false),
            ("Bank Accounts", false, true),
            ("Cash-in-Hand", false, true),
            ("Duties & Taxes", false, false),
            ("Sales Accounts", true, false),
            ("Purchase Accounts", true, true),
            ("Direct Expenses", true, true),
            ("Indirect Expenses", true, true),
            ("Indirect Incomes", true, false),
        ] {
            let parent = match g {
                "Sundry Debtors" | "Bank Accounts" | "Cash-in-Hand" => "Current Assets",
                "Sundry Creditors" | "Duties & Taxes" => "Current Liabilities",
                _ => "\u{4} Primary",
            };
            b.add_master(
                Kind::Group,
                g,
                &[
                    ("PARENT", parent),
                    ("ISREVENUE", if revenue { "Yes" } else { "No" }),
                    ("ISDEEMEDPOSITIVE", if positive { "Yes" } else { "No" }),
                ],
            );
        }
        for (l, parent, opening) in [
            ("Cash", "Cash-in-Hand", "-25000.00"),
            ("HDFC Bank", "Bank Accounts", "-150000.00"),
            ("Sales", "Sales Accounts", ""),
            ("Purchase", "Purchase Accounts", ""),
            ("Output GST", "Duties & Taxes", ""),
            ("Acme Traders", "Sundry Debtors", "-12000.00"),
            ("R&D Supplies", "Sundry Creditors", "8000.00"),
            ("Rent", "Indirect Expenses", ""),
        ] {
            b.add_master(
                Kind::Ledger,
                l,
                &[("PARENT", parent), ("OPENINGBALANCE", opening)],
            );
        }
        b.add_master(
            Kind::CostCentre,
            "Head Office",
            &[
                ("PARENT", "\u{4} Primary"),
                ("CATEGORY", "Primary Cost Category"),
            ],
        );
        b.add_master(
            Kind::StockItem,
            "Widget",
            &[
                ("PARENT", "\u{4} Primary"),
                ("BASEUNITS", "Nos"),
                ("OPENINGBALANCE", " 100 Nos"),
                ("OPENINGVALUE", "-10000.00"),
                ("OPENINGRATE", "100.00/Nos"),
            ],
        );
        let sale = VoucherIn {
            action: "Create".into(),
            vch_type: "Sales".into(),
            fields: BTreeMap::from([
                ("DATE".into(), "20261201".into()),
                ("PARTYLEDGERNAME".into(), "Acme Traders".into()),
                ("NARRATION".into(), "Opening sale".into()),
            ]),
            all_entries: vec![
                Entry {
                    ledger: "Acme Traders".into(),
                    amount: -11_800_000,
                },
                Entry {
                    ledger: "Sales".into(),
                    amount: 10_000_000,
                },
                Entry {
                    ledger: "Output GST".into(),
                    amount: 1_800_000,
                },
            ],
            ..VoucherIn::default()
        };
        let rent = VoucherIn {
            action: "Create".into(),
            vch_type: "Payment".into(),
            fields: BTreeMap::from([("DATE".into(), "20261202".into())]),
            all_entries: vec![
                Entry {
                    ledger: "Rent".into(),
                    amount: -250_000_000,
                },
                Entry {
                    ledger: "HDFC Bank".into(),
                    amount: 250_000_000,
                },
            ],
            ..VoucherIn::default()
        };
        b.import_voucher(sale);
        b.import_voucher(rent);
        b.imported_created = 0;
        b
    }

    fn next_alter(&mut self, kind: Kind) -> i64 {
        self.last_alter_id += 1;
        if kind == Kind::Voucher {
            self.alt_vch_id = self.last_alter_id;
        } else {
            self.alt_mst_id = self.last_alter_id;
        }
        self.last_alter_id
    }

    fn new_guid(&self, master_id: i64) -> String {
        // Tally's GUIDs: the company's GUID and the object's number
        format!("{}-{master_id:08x}", self.guid)
    }

    pub fn add_master(&mut self, kind: Kind, name: &str, fields: &[(&str, &str)]) -> String {
        self.add_master_as(kind, name, fields, None)
    }

    fn add_master_as(
        &mut self,
        kind: Kind,
        name: &str,
        fields: &[(&str, &str)],
        guid: Option<String>,
    ) -> String {
        self.last_master_id += 1;
        let master_id = self.last_master_id;
        let guid = guid.unwrap_or_else(|| self.new_guid(master_id));
        let alter_id = self.next_alter(kind);
        self.push(Object {
            kind,
            guid: guid.clone(),
            master_id,
            alter_id,
            name: name.into(),
            fields: fields
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            entries: Vec::new(),
            inventory: Vec::new(),
            invoice: false,
        });
        guid
    }

    pub fn find_master(&self, kind: Kind, name: &str) -> Option<usize> {
        self.by_name
            .get(&(kind, name.trim().to_lowercase()))
            .copied()
    }

    pub fn find_guid(&self, guid: &str) -> Option<usize> {
        if guid.is_empty() {
            return None;
        }
        self.by_guid.get(&guid.to_lowercase()).copied()
    }

    /// A ledger's closing balance: its opening balance and every voucher's entries on it.
    pub fn closing_balances(&self) -> BTreeMap<String, Units> {
        let mut out: BTreeMap<String, Units> = BTreeMap::new();
        for o in &self.objects {
            match o.kind {
                Kind::Ledger => {
                    *out.entry(o.name.to_lowercase()).or_default() +=
                        parse_amount(o.field("OPENINGBALANCE")).unwrap_or(0)
                }
                Kind::Voucher if o.field("ISCANCELLED") != "Yes" => {
                    for e in o
                        .entries
                        .iter()
                        .chain(o.inventory.iter().flat_map(|i| &i.allocations))
                    {
                        *out.entry(e.ledger.to_lowercase()).or_default() += e.amount;
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The voucher an alteration, cancellation or deletion names: by `REMOTEID`, else by date,
    /// type and voucher number.
    fn named_voucher(&self, v: &VoucherIn) -> Option<usize> {
        if let Some(i) = self
            .find_guid(&v.remote_id)
            .filter(|i| self.objects[*i].kind == Kind::Voucher)
        {
            return Some(i);
        }
        let number = if v
            .tag_name
            .replace(' ', "")
            .eq_ignore_ascii_case("VoucherNumber")
        {
            v.tag_value.as_str()
        } else {
            v.fields
                .get("VOUCHERNUMBER")
                .map(String::as_str)
                .unwrap_or("")
        };
        let date = if v.date_attr.is_empty() {
            v.fields.get("DATE").map(String::as_str).unwrap_or("")
        } else {
            v.date_attr.as_str()
        };
        self.objects.iter().position(|o| {
            o.kind == Kind::Voucher
                && !number.is_empty()
                && o.field("VOUCHERNUMBER") == number
                && o.field("VOUCHERTYPENAME").eq_ignore_ascii_case(&v.vch_type)
                && (date.is_empty() || o.field("DATE") == date)
        })
    }

    /// Imports one voucher (Create, Alter, Cancel or Delete).
    pub fn import_voucher(&mut self, v: VoucherIn) -> Outcome {
        let action = v.action.to_ascii_lowercase();
        let vtype = v
            .fields
            .get("VOUCHERTYPENAME")
            .cloned()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| v.vch_type.clone());
        if !VOUCHER_TYPES.iter().any(|t| t.eq_ignore_ascii_case(&vtype)) {
            return Outcome::error(format!("Voucher Type '{vtype}' does not exist!"));
        }
        if action == "delete" || action == "cancel" {
            let Some(i) = self.named_voucher(&v) else {
                return Outcome::error("Voucher does not exist!");
            };
            if action == "delete" {
                let gone = self.remove(i);
                self.next_alter(Kind::Voucher);
                return Outcome {
                    deleted: 1,
                    last_voucher_id: gone.master_id,
                    ..Outcome::default()
                };
            }
            let alter_id = self.next_alter(Kind::Voucher);
            let o = &mut self.objects[i];
            o.fields.insert("ISCANCELLED".into(), "Yes".into());
            o.alter_id = alter_id;
            return Outcome {
                cancelled: 1,
                last_voucher_id: o.master_id,
                ..Outcome::default()
            };
        }
        let invoice = !v.inventory.is_empty();
        if !invoice && v.all_entries.is_empty() && !v.invoice_entries.is_empty() {
            // a journal's entries sent in the invoice list: Tally creates nothing, says nothing
            return Outcome {
                exceptions: 1,
                ..Outcome::default()
            };
        }
        let entries: Vec<Entry> = if v.all_entries.is_empty() {
            v.invoice_entries.clone()
        } else {
            v.all_entries.clone()
        };
        let date = v.fields.get("DATE").cloned().unwrap_or_default();
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Outcome::error(format!("Voucher date '{date}' is not a date (YYYYMMDD)"));
        }
        if date.as_str() < self.starting_from.as_str() {
            return Outcome::error(format!(
                "Voucher date is before the books begin ({})",
                self.starting_from
            ));
        }
        if entries.is_empty() && v.inventory.is_empty() {
            return Outcome::error("Voucher has no entries!");
        }
        for e in entries
            .iter()
            .chain(v.inventory.iter().flat_map(|i| &i.allocations))
        {
            if self.find_master(Kind::Ledger, &e.ledger).is_none() {
                return Outcome::error(format!("Ledger '{}' does not exist!", e.ledger));
            }
        }
        for i in &v.inventory {
            if self.find_master(Kind::StockItem, &i.item).is_none() {
                return Outcome::error(format!("Stock Item '{}' does not exist!", i.item));
            }
        }
        if let Some(p) = v.fields.get("PARTYLEDGERNAME").filter(|p| !p.is_empty()) {
            if self.find_master(Kind::Ledger, p).is_none() {
                return Outcome::error(format!("Ledger '{p}' does not exist!"));
            }
        }
        let total: Units = entries
            .iter()
            .chain(v.inventory.iter().flat_map(|i| &i.allocations))
            .map(|e| e.amount)
            .sum();
        if total != 0 {
            let dr: Units = entries
                .iter()
                .chain(v.inventory.iter().flat_map(|i| &i.allocations))
                .filter(|e| e.amount < 0)
                .map(|e| -e.amount)
                .sum();
            return Outcome::error(format!(
                "Voucher totals do not match! Dr: {} Cr: {} Diff: {}",
                fmt_amount(dr),
                fmt_amount(dr + total),
                fmt_amount(total.abs())
            ));
        }
        let existing = match action.as_str() {
            "alter" => match self.named_voucher(&v) {
                Some(i) => Some(i),
                None => return Outcome::error("Voucher does not exist!"),
            },
            // a Create whose REMOTEID Tally has already alters that voucher
            _ => self.find_guid(&v.remote_id),
        };
        let mut fields: BTreeMap<String, String> = v
            .fields
            .iter()
            .filter(|(k, _)| {
                Kind::Voucher.fields().contains(&k.as_str())
                    && !["GUID", "MASTERID", "ALTERID"].contains(&k.as_str())
            })
            .map(|(k, val)| (k.clone(), val.clone()))
            .collect();
        fields.insert(
            "VOUCHERTYPENAME".into(),
            VOUCHER_TYPES
                .iter()
                .find(|t| t.eq_ignore_ascii_case(&vtype))
                .copied()
                .unwrap_or("Journal")
                .to_string(),
        );
        fields
            .entry("ISCANCELLED".into())
            .or_insert_with(|| "No".into());
        fields
            .entry("ISOPTIONAL".into())
            .or_insert_with(|| "No".into());
        let alter_id = self.next_alter(Kind::Voucher);
        match existing {
            Some(i) => {
                let o = &mut self.objects[i];
                if !fields.contains_key("VOUCHERNUMBER") {
                    if let Some(n) = o.fields.get("VOUCHERNUMBER").cloned() {
                        fields.insert("VOUCHERNUMBER".into(), n);
                    }
                }
                o.fields = fields;
                o.entries = entries;
                o.inventory = v.inventory;
                o.invoice = invoice;
                o.alter_id = alter_id;
                self.imported_altered += 1;
                Outcome {
                    altered: 1,
                    last_voucher_id: o.master_id,
                    ..Outcome::default()
                }
            }
            None => {
                // each voucher type numbers its own vouchers
                let counter = self
                    .numbers
                    .entry(fields["VOUCHERTYPENAME"].clone())
                    .or_insert(0);
                *counter += 1;
                if !fields.contains_key("VOUCHERNUMBER") {
                    fields.insert("VOUCHERNUMBER".into(), counter.to_string());
                }
                self.last_master_id += 1;
                let master_id = self.last_master_id;
                let guid = if v.remote_id.is_empty() {
                    v.fields
                        .get("GUID")
                        .cloned()
                        .filter(|g| !g.is_empty())
                        .unwrap_or_else(|| self.new_guid(master_id))
                } else {
                    v.remote_id.clone()
                };
                self.push(Object {
                    kind: Kind::Voucher,
                    guid,
                    master_id,
                    alter_id,
                    name: String::new(),
                    fields,
                    entries,
                    inventory: v.inventory,
                    invoice,
                });
                self.imported_created += 1;
                Outcome {
                    created: 1,
                    last_voucher_id: master_id,
                    ..Outcome::default()
                }
            }
        }
    }

    /// Imports one ledger master (Create, Alter or Delete).
    pub fn import_ledger(&mut self, l: LedgerIn) -> Outcome {
        let action = l.action.to_ascii_lowercase();
        let name = if l.name_attr.trim().is_empty() {
            l.new_names.first().cloned().unwrap_or_default()
        } else {
            l.name_attr.trim().to_string()
        };
        if name.is_empty() {
            return Outcome::error("Cannot import a Ledger without a name");
        }
        let by_remote = self
            .find_guid(&l.remote_id)
            .filter(|i| self.objects[*i].kind == Kind::Ledger);
        let existing = by_remote.or_else(|| self.find_master(Kind::Ledger, &name));
        match action.as_str() {
            "delete" => {
                let Some(i) = existing else {
                    return Outcome::error(format!("Ledger '{name}' does not exist!"));
                };
                let lname = self.objects[i].name.clone();
                let used = self.objects.iter().any(|o| {
                    o.kind == Kind::Voucher
                        && o.entries
                            .iter()
                            .chain(o.inventory.iter().flat_map(|x| &x.allocations))
                            .any(|e| e.ledger.eq_ignore_ascii_case(&lname))
                });
                if used {
                    return Outcome::error(format!(
                        "Cannot delete Ledger '{lname}': it has vouchers"
                    ));
                }
                let gone = self.remove(i);
                self.next_alter(Kind::Ledger);
                Outcome {
                    deleted: 1,
                    last_master_id: gone.master_id,
                    ..Outcome::default()
                }
            }
            _ => {
                if let Some(parent) = l.fields.get("PARENT") {
                    if self.find_master(Kind::Group, parent).is_none() {
                        return Outcome::error(format!("Group '{parent}' does not exist!"));
                    }
                }
                if let Some(ob) = l.fields.get("OPENINGBALANCE") {
                    if parse_amount(ob).is_none() {
                        return Outcome::error(format!("'{ob}' is not an amount"));
                    }
                }
                let new_name = l
                    .new_names
                    .first()
                    .cloned()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| name.clone());
                match (action.as_str(), existing) {
                    ("alter", None) => Outcome::error(format!("Ledger '{name}' does not exist!")),
                    ("create", Some(i)) if by_remote.is_none() => {
                        let _ = i;
                        Outcome::error(format!("Ledger '{name}' already exists!"))
                    }
                    (_, Some(i)) => {
                        if !new_name.eq_ignore_ascii_case(&self.objects[i].name)
                            && self.find_master(Kind::Ledger, &new_name).is_some()
                        {
                            return Outcome::error(format!("Ledger '{new_name}' already exists!"));
                        }
                        let alter_id = self.next_alter(Kind::Ledger);
                        let o = &mut self.objects[i];
                        let old = std::mem::replace(&mut o.name, new_name.trim().to_string());
                        // an altered master is replaced whole: fields not sent are cleared
                        o.fields = l.fields.clone();
                        o.alter_id = alter_id;
                        let renamed = o.name.clone();
                        let master_id = o.master_id;
                        if !old.eq_ignore_ascii_case(&renamed) {
                            self.reindex();
                            for v in self.objects.iter_mut().filter(|v| v.kind == Kind::Voucher) {
                                for e in v.entries.iter_mut().chain(
                                    v.inventory
                                        .iter_mut()
                                        .flat_map(|x| x.allocations.iter_mut()),
                                ) {
                                    if e.ledger.eq_ignore_ascii_case(&old) {
                                        e.ledger = renamed.clone();
                                    }
                                }
                                if v.field("PARTYLEDGERNAME").eq_ignore_ascii_case(&old) {
                                    v.fields.insert("PARTYLEDGERNAME".into(), renamed.clone());
                                }
                            }
                        }
                        Outcome {
                            altered: 1,
                            last_master_id: master_id,
                            ..Outcome::default()
                        }
                    }
                    (_, None) => {
                        if !l.fields.contains_key("PARENT") {
                            return Outcome::error(format!("Ledger '{name}': Parent is required"));
                        }
                        let fields: Vec<(&str, &str)> = l
                            .fields
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect();
                        let guid = (!l.remote_id.is_empty()).then(|| l.remote_id.clone());
                        self.add_master_as(Kind::Ledger, new_name.trim(), &fields, guid);
                        Outcome {
                            created: 1,
                            last_master_id: self.last_master_id,
                            ..Outcome::default()
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(remote: &str, ledger: &str, amount: Units) -> VoucherIn {
        VoucherIn {
            action: "Create".into(),
            remote_id: remote.into(),
            vch_type: "Sales".into(),
            fields: BTreeMap::from([("DATE".into(), "20261205".into())]),
            all_entries: vec![
                Entry {
                    ledger: ledger.into(),
                    amount: -amount,
                },
                Entry {
                    ledger: "Sales".into(),
                    amount,
                },
            ],
            ..VoucherIn::default()
        }
    }

    #[test]
    fn imports_are_checked_as_tally_checks_them() {
        let mut b = Books::demo("Demo", "c0ffee");
        let vch = b.alt_vch_id;
        let o = b.import_voucher(sale("r-1", "Cash", 10_000));
        assert_eq!(o.created, 1);
        assert!(b.alt_vch_id > vch);
        // the same REMOTEID again alters, never duplicates
        let o = b.import_voucher(sale("r-1", "Cash", 20_000));
        assert_eq!((o.created, o.altered), (0, 1));
        assert_eq!(b.objects.iter().filter(|o| o.guid == "r-1").count(), 1);
        let o = b.import_voucher(sale("r-2", "Nope", 10_000));
        assert_eq!(
            o.line_errors,
            vec!["Ledger 'Nope' does not exist!".to_string()]
        );
        let mut unbalanced = sale("r-3", "Cash", 10_000);
        unbalanced.all_entries[0].amount = -5_000;
        assert!(
            b.import_voucher(unbalanced).line_errors[0].starts_with("Voucher totals do not match!")
        );
        let mut journal = sale("r-4", "Cash", 10_000);
        journal.invoice_entries = std::mem::take(&mut journal.all_entries);
        assert_eq!(b.import_voucher(journal).exceptions, 1);
        let del = VoucherIn {
            action: "Delete".into(),
            remote_id: "r-1".into(),
            vch_type: "Sales".into(),
            ..VoucherIn::default()
        };
        assert_eq!(b.import_voucher(del).deleted, 1);
        assert!(b.find_guid("r-1").is_none());
    }

    #[test]
    fn ledgers_are_created_renamed_and_kept_when_used() {
        let mut b = Books::demo("Demo", "c0ffee");
        let mk = |action: &str, name: &str, new: &[&str]| LedgerIn {
            action: action.into(),
            name_attr: name.into(),
            new_names: new.iter().map(|s| s.to_string()).collect(),
            fields: BTreeMap::from([("PARENT".into(), "Sundry Debtors".into())]),
            ..LedgerIn::default()
        };
        assert_eq!(b.import_ledger(mk("Create", "Globex", &[])).created, 1);
        assert_eq!(
            b.import_ledger(mk("Create", "Globex", &[])).line_errors,
            vec!["Ledger 'Globex' already exists!".to_string()]
        );
        assert_eq!(
            b.import_ledger(mk("Alter", "Globex", &["Globex Ltd"]))
                .altered,
            1
        );
        assert!(b.find_master(Kind::Ledger, "Globex Ltd").is_some());
        assert_eq!(b.import_ledger(mk("Delete", "Cash", &[])).errors, 0); // Cash has no voucher in the demo
        assert_eq!(b.import_ledger(mk("Delete", "Acme Traders", &[])).errors, 1);
        assert_eq!(closing(&b, "HDFC Bank"), -150_000 * 10_000 + 250_000_000);
    }

    fn closing(b: &Books, l: &str) -> Units {
        b.closing_balances()[&l.to_lowercase()]
    }
}
