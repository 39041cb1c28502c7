//! Model definitions: the field list of each model the sandbox serves.
//!
//! Adding a model is one function returning a [`ModelDef`] plus a line in
//! [`builtin_models_for`]; the generic record store does the rest (create, read,
//! search, write, unlink, fields_get, one2many commands, stored computed
//! totals...). Every model automatically gets the magic fields `id`,
//! `display_name`, `create_date`, `create_uid`, `write_date` and `write_uid`.
//!
//! Fields marked "sandbox addition" do not exist in a stock Odoo database (a
//! customer would add them as custom fields); they give the fleet a place to
//! stamp its intent id on models that have no native reference field.

use serde_json::{json, Value};

/// Field types (the `type` key of `fields_get`).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    /// `char`
    Char,
    /// `text`
    Text,
    /// `html`
    Html,
    /// `integer`
    Integer,
    /// `float`
    Float,
    /// `boolean`
    Boolean,
    /// `selection` with its `(value, label)` pairs.
    Selection(Vec<(&'static str, &'static str)>),
    /// `many2one` to the given model.
    Many2one(&'static str),
    /// `datetime` ("YYYY-MM-DD HH:MM:SS", UTC).
    Datetime,
    /// `date` ("YYYY-MM-DD").
    Date,
    /// `one2many` to the given model through its many2one `inverse` field.
    One2many(&'static str, &'static str),
    /// `many2many` to the given model (kept in the row as its list of ids, where Odoo has a
    /// relation table).
    Many2many(&'static str),
}

impl FieldType {
    /// The Odoo type name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Char => "char",
            Self::Text => "text",
            Self::Html => "html",
            Self::Integer => "integer",
            Self::Float => "float",
            Self::Boolean => "boolean",
            Self::Selection(_) => "selection",
            Self::Many2one(_) => "many2one",
            Self::Datetime => "datetime",
            Self::Date => "date",
            Self::One2many(..) => "one2many",
            Self::Many2many(_) => "many2many",
        }
    }
}

/// Default value of a field when `create` does not provide it.
#[derive(Debug, Clone, PartialEq)]
pub enum Default {
    /// No default: the field is unset (read as `false`, `0` or `0.0`).
    None,
    /// A constant.
    Value(Value),
    /// The id of the calling user (`lambda self: self.env.user`).
    CurrentUser,
    /// The first record of the comodel in its default order (e.g. the first stage).
    FirstRecord,
    /// The next number of a sequence: prefix and zero-padded width (`S00042`).
    Sequence(&'static str, usize),
    /// The current date (`fields.Date.context_today`).
    Today,
    /// The current time (`fields.Datetime.now`).
    Now,
    /// A field of the record a many2one of the same record points to, e.g. a sale
    /// line's `price_unit` from its product's `list_price` (`display_name` for the name).
    Related(&'static str, &'static str),
}

/// How a stored computed field is computed (recomputed on every change of its inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    /// The product of two numeric fields of the record (`price_subtotal`).
    Mul(&'static str, &'static str),
    /// The sum of a numeric field over a one2many (`amount_total`).
    Sum(&'static str, &'static str),
    /// A copy of another field (`complete_name`).
    Copy(&'static str),
    /// A base amount with the taxes (a many2many to `account.tax`) on it and a quantity:
    /// a journal item's `price_total` from `price_subtotal`, `tax_ids` and `quantity`.
    WithTaxes(&'static str, &'static str, &'static str),
    /// The difference of two stored sums of the record (an invoice's `amount_tax`).
    Diff(&'static str, &'static str),
}

/// What deleting the target of a many2one does to the records pointing at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// `ondelete='set null'` (Odoo's default).
    SetNull,
    /// `ondelete='cascade'`: the records are deleted too.
    Cascade,
    /// `ondelete='restrict'`: the deletion fails while references exist.
    Restrict,
}

/// One field of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    /// Technical name.
    pub name: &'static str,
    /// Label (`string` in `fields_get`).
    pub string: &'static str,
    /// Type.
    pub ftype: FieldType,
    /// NOT NULL: create/write without a value raises a ValidationError.
    pub required: bool,
    /// Not writable by clients (magic fields).
    pub readonly: bool,
    /// Stored (searchable and sortable); `display_name` is not.
    pub store: bool,
    /// Default on create.
    pub default: Default,
    /// Stored computed field: readonly, recomputed by the store.
    pub compute: Option<Compute>,
    /// Many2one only: what deleting the target does.
    pub ondelete: OnDelete,
}

impl FieldDef {
    /// A stored, writable, optional field without default.
    pub fn new(name: &'static str, string: &'static str, ftype: FieldType) -> Self {
        Self {
            name,
            string,
            ftype,
            required: false,
            readonly: false,
            store: true,
            default: Default::None,
            compute: None,
            ondelete: OnDelete::SetNull,
        }
    }

    /// Marks the field as readonly for clients.
    pub fn readonly(mut self) -> Self {
        self.readonly = true;
        self
    }

    /// Makes the field a stored computed field (readonly).
    pub fn computed(mut self, c: Compute) -> Self {
        self.compute = Some(c);
        self.readonly = true;
        self
    }

    /// Sets the `ondelete` policy of a many2one.
    pub fn ondelete(mut self, policy: OnDelete) -> Self {
        self.ondelete = policy;
        self
    }

    /// Marks the field as required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Sets a constant default.
    pub fn default(mut self, v: Value) -> Self {
        self.default = Default::Value(v);
        self
    }

    /// Sets a computed default.
    pub fn default_with(mut self, d: Default) -> Self {
        self.default = d;
        self
    }

    fn magic(name: &'static str, string: &'static str, ftype: FieldType) -> Self {
        Self {
            readonly: true,
            ..Self::new(name, string, ftype)
        }
    }
}

/// A model: name, description, fields and default order.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDef {
    /// Technical name (`crm.lead`).
    pub name: &'static str,
    /// `_description`, used in some error messages.
    pub description: &'static str,
    /// `_order`, used when `search` gets no `order`.
    pub order: &'static str,
    /// `_rec_name`: the field giving `display_name`.
    pub rec_name: &'static str,
    /// All fields, magic ones included.
    pub fields: Vec<FieldDef>,
}

impl ModelDef {
    /// Builds a model, appending the magic fields.
    pub fn new(
        name: &'static str,
        description: &'static str,
        order: &'static str,
        fields: Vec<FieldDef>,
    ) -> Self {
        let mut all = fields;
        all.push(FieldDef::magic("id", "ID", FieldType::Integer));
        all.push(FieldDef {
            store: false,
            ..FieldDef::magic("display_name", "Display Name", FieldType::Char)
        });
        all.push(FieldDef::magic(
            "create_date",
            "Created on",
            FieldType::Datetime,
        ));
        all.push(FieldDef::magic(
            "create_uid",
            "Created by",
            FieldType::Many2one("res.users"),
        ));
        all.push(FieldDef::magic(
            "write_date",
            "Last Updated on",
            FieldType::Datetime,
        ));
        all.push(FieldDef::magic(
            "write_uid",
            "Last Updated by",
            FieldType::Many2one("res.users"),
        ));
        Self {
            name,
            description,
            order,
            rec_name: "name",
            fields: all,
        }
    }

    /// The field called `name`, if any.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether the model has an `active` field (archived records are hidden from search).
    pub fn has_active(&self) -> bool {
        self.field("active").is_some()
    }

    /// Sets `_rec_name`.
    pub fn rec_name(mut self, field: &'static str) -> Self {
        self.rec_name = field;
        self
    }
}

/// The major version of an Odoo version string (`"17.0"`, `"saas~18.3"`, `"19.0+e"`).
pub fn major_version(version: &str) -> u32 {
    version
        .split(|c: char| !c.is_ascii_digit())
        .find(|p| !p.is_empty())
        .and_then(|p| p.parse().ok())
        .unwrap_or(17)
}

/// `crm.lead` (CRM leads/opportunities), with the commonly used fields.
pub fn crm_lead() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "crm.lead",
        "Lead/Opportunity",
        "priority desc, id desc",
        vec![
            FieldDef::new("name", "Opportunity", Char).required(),
            FieldDef::new("partner_id", "Customer", Many2one("res.partner")),
            FieldDef::new("partner_name", "Company Name", Char),
            FieldDef::new("contact_name", "Contact Name", Char),
            FieldDef::new("email_from", "Email", Char),
            FieldDef::new("phone", "Phone", Char),
            FieldDef::new("expected_revenue", "Expected Revenue", Float),
            FieldDef::new("probability", "Probability", Float),
            FieldDef::new(
                "priority",
                "Priority",
                Selection(vec![
                    ("0", "Low"),
                    ("1", "Medium"),
                    ("2", "High"),
                    ("3", "Very High"),
                ]),
            )
            .default(json!("0")),
            FieldDef::new(
                "type",
                "Type",
                Selection(vec![("lead", "Lead"), ("opportunity", "Opportunity")]),
            )
            .required()
            .default(json!("lead")),
            FieldDef::new("stage_id", "Stage", Many2one("crm.stage"))
                .default_with(Default::FirstRecord),
            FieldDef::new("user_id", "Salesperson", Many2one("res.users"))
                .default_with(Default::CurrentUser),
            FieldDef::new("description", "Notes", Html),
            FieldDef::new("date_deadline", "Expected Closing", Date),
            FieldDef::new("referred", "Referred By", Char),
            FieldDef::new("active", "Active", Boolean).default(json!(true)),
        ],
    )
}

/// `crm.stage`, seeded with Odoo's default pipeline.
pub fn crm_stage() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "crm.stage",
        "CRM Stages",
        "sequence, name, id",
        vec![
            FieldDef::new("name", "Stage Name", Char).required(),
            FieldDef::new("sequence", "Sequence", Integer).default(json!(1)),
            FieldDef::new("is_won", "Is Won Stage?", Boolean),
            FieldDef::new("fold", "Folded in Pipeline", Boolean),
        ],
    )
}

/// `res.users` (read side only: passwords live in the sandbox config, never in records).
pub fn res_users() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "res.users",
        "User",
        "name, login",
        vec![
            FieldDef::new("name", "Name", Char).required(),
            FieldDef::new("login", "Login", Char).required(),
            FieldDef::new("email", "Email", Char),
            FieldDef::new("lang", "Language", Char).default(json!("en_US")),
            FieldDef::new("tz", "Timezone", Char).default(json!("UTC")),
            FieldDef::new("active", "Active", Boolean).default(json!(true)),
        ],
    )
}

/// `ir.model`: one record per served model (`'crm.lead' in odoo.env` searches it).
pub fn ir_model() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "ir.model",
        "Models",
        "model",
        vec![
            FieldDef::new("name", "Model Description", Char).required(),
            FieldDef::new("model", "Model", Char).required(),
        ],
    )
}

/// `res.partner` (contacts and companies).
pub fn res_partner() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "res.partner",
        "Contact",
        "complete_name asc, id desc",
        vec![
            FieldDef::new("name", "Name", Char).required(),
            FieldDef::new("complete_name", "Complete Name", Char).computed(Compute::Copy("name")),
            FieldDef::new("is_company", "Is a Company", Boolean).default(json!(false)),
            FieldDef::new("parent_id", "Related Company", Many2one("res.partner")),
            FieldDef::new(
                "type",
                "Address Type",
                Selection(vec![
                    ("contact", "Contact"),
                    ("invoice", "Invoice Address"),
                    ("delivery", "Delivery Address"),
                    ("other", "Other Address"),
                ]),
            )
            .default(json!("contact")),
            FieldDef::new("email", "Email", Char),
            FieldDef::new("phone", "Phone", Char),
            FieldDef::new("street", "Street", Char),
            FieldDef::new("city", "City", Char),
            FieldDef::new("zip", "Zip", Char),
            FieldDef::new("vat", "Tax ID", Char),
            FieldDef::new("website", "Website Link", Char),
            FieldDef::new("ref", "Reference", Char),
            FieldDef::new("comment", "Notes", Html),
            FieldDef::new("customer_rank", "Customer Rank", Integer).default(json!(0)),
            FieldDef::new("supplier_rank", "Supplier Rank", Integer).default(json!(0)),
            FieldDef::new("active", "Active", Boolean).default(json!(true)),
        ],
    )
    .rec_name("complete_name")
}

/// `product.product` (product variants). Odoo 18 replaced the `product` ("Storable
/// Product") type by the `is_storable` flag and added the `combo` type.
pub fn product_product(major: u32) -> ModelDef {
    product_product_with(major, true)
}

/// `product.product` of a database with or without the Inventory app (`is_storable` is
/// stock's, from 18 on).
pub fn product_product_with(major: u32, stock: bool) -> ModelDef {
    use FieldType::*;
    let types = if major >= 18 {
        vec![
            ("consu", "Goods"),
            ("service", "Service"),
            ("combo", "Combo"),
        ]
    } else {
        vec![
            ("consu", "Consumable"),
            ("service", "Service"),
            ("product", "Storable Product"),
        ]
    };
    let mut fields = vec![
        FieldDef::new("name", "Name", Char).required(),
        FieldDef::new("default_code", "Internal Reference", Char),
        FieldDef::new("barcode", "Barcode", Char),
        FieldDef::new("list_price", "Sales Price", Float).default(json!(1.0)),
        FieldDef::new("standard_price", "Cost", Float),
        FieldDef::new("type", "Product Type", Selection(types))
            .required()
            .default(json!("consu")),
    ];
    if major >= 18 && stock {
        fields.push(FieldDef::new("is_storable", "Track Inventory", Boolean).default(json!(false)));
    }
    fields.extend([
        FieldDef::new("sale_ok", "Can be Sold", Boolean).default(json!(true)),
        // the company's default sale tax (the seeded "15%", id 1)
        FieldDef::new("taxes_id", "Customer Taxes", Many2many("account.tax")).default(json!([1])),
        FieldDef::new("purchase_ok", "Can be Purchased", Boolean).default(json!(true)),
        FieldDef::new("description_sale", "Sales Description", Text),
        // sandbox addition (default_code is the product's business reference)
        FieldDef::new("ref", "Reference", Char),
        FieldDef::new("active", "Active", Boolean).default(json!(true)),
    ]);
    ModelDef::new(
        "product.product",
        "Product Variant",
        "default_code, name, id",
        fields,
    )
}

/// `sale.order` (quotations and sales orders) with its `order_line` one2many.
pub fn sale_order() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "sale.order",
        "Sales Order",
        "date_order desc, id desc",
        vec![
            FieldDef::new("name", "Order Reference", Char)
                .required()
                .default_with(Default::Sequence("S", 5)),
            FieldDef::new("partner_id", "Customer", Many2one("res.partner")).required(),
            FieldDef::new("date_order", "Order Date", Datetime)
                .required()
                .default_with(Default::Now),
            FieldDef::new("validity_date", "Expiration", Date),
            FieldDef::new("client_order_ref", "Customer Reference", Char),
            FieldDef::new("origin", "Source Document", Char),
            FieldDef::new(
                "state",
                "Status",
                Selection(vec![
                    ("draft", "Quotation"),
                    ("sent", "Quotation Sent"),
                    ("sale", "Sales Order"),
                    ("cancel", "Cancelled"),
                ]),
            )
            .readonly()
            .default(json!("draft")),
            FieldDef::new("user_id", "Salesperson", Many2one("res.users"))
                .default_with(Default::CurrentUser),
            FieldDef::new(
                "order_line",
                "Order Lines",
                One2many("sale.order.line", "order_id"),
            ),
            FieldDef::new("amount_untaxed", "Untaxed Amount", Float)
                .computed(Compute::Sum("order_line", "price_subtotal")),
            FieldDef::new("amount_tax", "Taxes", Float)
                .computed(Compute::Sum("order_line", "price_tax")),
            FieldDef::new("amount_total", "Total", Float)
                .computed(Compute::Sum("order_line", "price_subtotal")),
            FieldDef::new("note", "Terms and conditions", Html),
        ],
    )
}

/// `sale.order.line`.
pub fn sale_order_line() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "sale.order.line",
        "Sales Order Line",
        "order_id, sequence, id",
        vec![
            FieldDef::new("order_id", "Order Reference", Many2one("sale.order"))
                .required()
                .ondelete(OnDelete::Cascade),
            FieldDef::new("sequence", "Sequence", Integer).default(json!(10)),
            FieldDef::new("product_id", "Product", Many2one("product.product"))
                .ondelete(OnDelete::Restrict),
            // A section title or a note: no product, no amounts.
            FieldDef::new(
                "display_type",
                "Display Type",
                Selection(vec![("line_section", "Section"), ("line_note", "Note")]),
            ),
            FieldDef::new("name", "Description", Text)
                .required()
                .default_with(Default::Related("product_id", "display_name")),
            FieldDef::new("product_uom_qty", "Quantity", Float).default(json!(1.0)),
            FieldDef::new("price_unit", "Unit Price", Float)
                .default_with(Default::Related("product_id", "list_price")),
            FieldDef::new("price_subtotal", "Subtotal", Float)
                .computed(Compute::Mul("product_uom_qty", "price_unit")),
            FieldDef::new("price_tax", "Total Tax", Float).readonly(),
        ],
    )
}

/// `account.move` (journal entries; customer invoices are `move_type='out_invoice'`).
pub fn account_move() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "account.move",
        "Journal Entry",
        "date desc, name desc, invoice_date desc, id desc",
        vec![
            FieldDef::new("name", "Number", Char).default(json!("/")),
            FieldDef::new(
                "move_type",
                "Type",
                Selection(vec![
                    ("entry", "Journal Entry"),
                    ("out_invoice", "Customer Invoice"),
                    ("out_refund", "Customer Credit Note"),
                    ("in_invoice", "Vendor Bill"),
                    ("in_refund", "Vendor Credit Note"),
                    ("out_receipt", "Sales Receipt"),
                    ("in_receipt", "Purchase Receipt"),
                ]),
            )
            .required()
            .default(json!("entry")),
            FieldDef::new("partner_id", "Partner", Many2one("res.partner")),
            FieldDef::new("ref", "Reference", Char),
            FieldDef::new("invoice_origin", "Origin", Char),
            FieldDef::new("date", "Date", Date)
                .required()
                .default_with(Default::Today),
            FieldDef::new("invoice_date", "Invoice/Bill Date", Date),
            FieldDef::new("invoice_date_due", "Due Date", Date),
            FieldDef::new(
                "state",
                "Status",
                Selection(vec![
                    ("draft", "Draft"),
                    ("posted", "Posted"),
                    ("cancel", "Cancelled"),
                ]),
            )
            .required()
            .readonly()
            .default(json!("draft")),
            FieldDef::new(
                "payment_state",
                "Payment Status",
                Selection(vec![
                    ("not_paid", "Not Paid"),
                    ("in_payment", "In Payment"),
                    ("paid", "Paid"),
                    ("partial", "Partially Paid"),
                    ("reversed", "Reversed"),
                ]),
            )
            .readonly()
            .default(json!("not_paid")),
            FieldDef::new(
                "invoice_line_ids",
                "Invoice lines",
                One2many("account.move.line", "move_id"),
            ),
            FieldDef::new("amount_untaxed", "Untaxed Amount", Float)
                .computed(Compute::Sum("invoice_line_ids", "price_subtotal")),
            FieldDef::new("amount_total", "Total", Float)
                .computed(Compute::Sum("invoice_line_ids", "price_total")),
            FieldDef::new("amount_tax", "Tax", Float)
                .computed(Compute::Diff("amount_total", "amount_untaxed")),
            FieldDef::new("narration", "Terms and Conditions", Html),
        ],
    )
}

/// `account.tax`: percent and fixed taxes, prices tax-excluded (`price_include` is stored but
/// not applied).
pub fn account_tax() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "account.tax",
        "Tax",
        "sequence, id",
        vec![
            FieldDef::new("name", "Tax Name", Char).required(),
            FieldDef::new(
                "amount_type",
                "Tax Computation",
                Selection(vec![("percent", "Percentage of Price"), ("fixed", "Fixed")]),
            )
            .required()
            .default(json!("percent")),
            FieldDef::new("amount", "Amount", Float),
            FieldDef::new(
                "type_tax_use",
                "Tax Type",
                Selection(vec![
                    ("sale", "Sales"),
                    ("purchase", "Purchases"),
                    ("none", "None"),
                ]),
            )
            .required()
            .default(json!("sale")),
            FieldDef::new("price_include", "Included in Price", Boolean).default(json!(false)),
            FieldDef::new("sequence", "Sequence", Integer).default(json!(1)),
            FieldDef::new("active", "Active", Boolean).default(json!(true)),
        ],
    )
}

/// `account.move.line` (the invoice lines of `account.move`).
pub fn account_move_line() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "account.move.line",
        "Journal Item",
        "date desc, move_name desc, id",
        vec![
            FieldDef::new("move_id", "Journal Entry", Many2one("account.move"))
                .required()
                .ondelete(OnDelete::Cascade),
            FieldDef::new("move_name", "Number", Char),
            FieldDef::new("date", "Date", Date).default_with(Default::Today),
            FieldDef::new("sequence", "Sequence", Integer).default(json!(10)),
            FieldDef::new("product_id", "Product", Many2one("product.product"))
                .ondelete(OnDelete::Restrict),
            FieldDef::new("name", "Label", Char)
                .default_with(Default::Related("product_id", "display_name")),
            FieldDef::new("quantity", "Quantity", Float).default(json!(1.0)),
            FieldDef::new("price_unit", "Unit Price", Float)
                .default_with(Default::Related("product_id", "list_price")),
            FieldDef::new("price_subtotal", "Subtotal", Float)
                .computed(Compute::Mul("quantity", "price_unit")),
            // the product's customer taxes unless given
            FieldDef::new("tax_ids", "Taxes", Many2many("account.tax"))
                .default_with(Default::Related("product_id", "taxes_id")),
            // Odoo's journal items have no price_tax: the tax is total minus subtotal
            FieldDef::new("price_total", "Total", Float).computed(Compute::WithTaxes(
                "price_subtotal",
                "tax_ids",
                "quantity",
            )),
        ],
    )
}

/// `stock.location` (seeded with a warehouse's stock location).
pub fn stock_location() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "stock.location",
        "Inventory Locations",
        "complete_name, id",
        vec![
            FieldDef::new("name", "Location Name", Char).required(),
            FieldDef::new("complete_name", "Full Location Name", Char),
            FieldDef::new(
                "usage",
                "Location Type",
                Selection(vec![
                    ("supplier", "Vendor"),
                    ("view", "Virtual"),
                    ("internal", "Internal"),
                    ("customer", "Customer"),
                    ("inventory", "Inventory Loss"),
                    ("production", "Production"),
                    ("transit", "Transit"),
                ]),
            )
            .required()
            .default(json!("internal")),
            FieldDef::new("active", "Active", Boolean).default(json!(true)),
        ],
    )
    .rec_name("complete_name")
}

/// `stock.quant` (on-hand quantities per product and location).
pub fn stock_quant() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "stock.quant",
        "Quants",
        "id",
        vec![
            FieldDef::new("product_id", "Product", Many2one("product.product"))
                .required()
                .ondelete(OnDelete::Restrict),
            FieldDef::new("location_id", "Location", Many2one("stock.location"))
                .required()
                .ondelete(OnDelete::Restrict),
            FieldDef::new("quantity", "Quantity", Float).readonly(),
            FieldDef::new("reserved_quantity", "Reserved Quantity", Float).readonly(),
            FieldDef::new("inventory_quantity", "Counted Quantity", Float),
            FieldDef::new("in_date", "Incoming Date", Datetime).default_with(Default::Now),
            // sandbox addition: stock.quant has no reference field in stock Odoo
            FieldDef::new("ref", "Reference", Char),
        ],
    )
    .rec_name("product_id")
}

/// `hr.department`.
pub fn hr_department() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "hr.department",
        "Department",
        "name",
        vec![
            FieldDef::new("name", "Department Name", Char).required(),
            FieldDef::new("active", "Active", Boolean).default(json!(true)),
        ],
    )
}

/// `hr.employee`.
pub fn hr_employee() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "hr.employee",
        "Employee",
        "name",
        vec![
            FieldDef::new("name", "Employee Name", Char).required(),
            FieldDef::new("work_email", "Work Email", Char),
            FieldDef::new("work_phone", "Work Phone", Char),
            FieldDef::new("job_title", "Job Title", Char),
            FieldDef::new("department_id", "Department", Many2one("hr.department")),
            FieldDef::new("parent_id", "Manager", Many2one("hr.employee")),
            FieldDef::new("user_id", "User", Many2one("res.users")),
            FieldDef::new("barcode", "Badge ID", Char),
            FieldDef::new("identification_id", "Identification No", Char),
            FieldDef::new("active", "Active", Boolean).default(json!(true)),
        ],
    )
}

/// Adds custom Char fields (`(model, x_name)`) to `models`, as an administrator adding them
/// under Settings > Technical > Fields makes them exist. Odoo allows only `x_` names there.
pub fn add_custom_fields(
    models: &mut [ModelDef],
    custom: &[(String, String)],
) -> Result<(), String> {
    for (model, field) in custom {
        check_custom_field_name(field)?;
        let def = models
            .iter_mut()
            .find(|m| m.name == model)
            .ok_or_else(|| format!("no model {model} to add {field} to"))?;
        if def.field(field).is_some() {
            continue;
        }
        // field names live as long as the process (`&'static str`); a handful from the config
        let name: &'static str = Box::leak(field.clone().into_boxed_str());
        def.fields.push(FieldDef::new(name, name, FieldType::Char));
    }
    Ok(())
}

fn check_custom_field_name(field: &str) -> Result<(), String> {
    let valid = field.starts_with("x_")
        && field.len() > 2
        && field.len() <= 63
        && field
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "custom field '{field}' must be a lowercase name starting with x_ (Odoo's rule)"
        ))
    }
}

/// Parses `crm.lead:x_bac_intent_id,sale.order:x_bac_intent_id` (empty: none).
pub fn parse_custom_fields(spec: &str) -> Result<Vec<(String, String)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (model, field) = item
                .split_once(':')
                .ok_or_else(|| format!("'{item}' is not model:field"))?;
            check_custom_field_name(field.trim())?;
            Ok((model.trim().to_owned(), field.trim().to_owned()))
        })
        .collect()
}

/// All models served by an Odoo sandbox of the given major version.
pub fn builtin_models_for(major: u32) -> Vec<ModelDef> {
    models_for(major, true)
}

/// The models of a database of version `major`, with or without the Inventory app.
pub fn models_for(major: u32, stock: bool) -> Vec<ModelDef> {
    let mut models = vec![
        crm_lead(),
        crm_stage(),
        res_users(),
        ir_model(),
        res_partner(),
        product_product_with(major, stock),
        sale_order(),
        sale_order_line(),
        account_tax(),
        account_move(),
        account_move_line(),
    ];
    if stock {
        models.extend([stock_location(), stock_quant()]);
    }
    models.extend([hr_department(), hr_employee()]);
    models
}

/// The models of an Odoo 17 sandbox.
pub fn builtin_models() -> Vec<ModelDef> {
    builtin_models_for(17)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_fields_are_added_as_an_administrator_would() {
        let mut models = models_for(17, true);
        let spec =
            parse_custom_fields(" crm.lead:x_bac_intent_id, sale.order:x_bac_intent_id,").unwrap();
        add_custom_fields(&mut models, &spec).unwrap();
        let lead = models.iter().find(|m| m.name == "crm.lead").unwrap();
        assert_eq!(
            lead.field("x_bac_intent_id").unwrap().ftype,
            FieldType::Char
        );
        assert!(parse_custom_fields("crm.lead:intent").is_err());
        assert!(parse_custom_fields("crm.lead").is_err());
        assert!(add_custom_fields(&mut models, &[("no.model".into(), "x_a".into())]).is_err());
    }

    #[test]
    fn versions_and_relations() {
        assert_eq!(major_version("17.0"), 17);
        assert_eq!(major_version("saas~18.3"), 18);
        assert_eq!(major_version("19.0+e"), 19);
        assert_eq!(major_version(""), 17);
        let models = builtin_models_for(19);
        let names: Vec<&str> = models.iter().map(|m| m.name).collect();
        // every relation points at a served model, every one2many at a many2one back
        for m in &models {
            for f in &m.fields {
                match &f.ftype {
                    FieldType::Many2one(co) => assert!(names.contains(co), "{}.{}", m.name, f.name),
                    FieldType::One2many(co, inverse) => {
                        let comodel = models.iter().find(|c| c.name == *co).unwrap();
                        assert_eq!(
                            comodel.field(inverse).unwrap().ftype,
                            FieldType::Many2one(m.name)
                        );
                    }
                    _ => {}
                }
            }
        }
        let p17 = product_product(17);
        assert!(p17.field("is_storable").is_none());
        assert!(product_product(18).field("is_storable").is_some());
    }
}
