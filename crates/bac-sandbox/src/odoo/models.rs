//! Model definitions: the field list of each model the sandbox serves.
//!
//! Adding a model is one function returning a [`ModelDef`] plus a line in
//! [`builtin_models`]; the generic record store does the rest (create, read,
//! search, write, unlink, fields_get...). Every model automatically gets the
//! magic fields `id`, `display_name`, `create_date`, `create_uid`,
//! `write_date` and `write_uid`.

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
        }
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
}

/// `crm.lead` (Odoo 17 CRM leads/opportunities), with the commonly used fields.
pub fn crm_lead() -> ModelDef {
    use FieldType::*;
    ModelDef::new(
        "crm.lead",
        "Lead/Opportunity",
        "priority desc, id desc",
        vec![
            FieldDef::new("name", "Opportunity", Char).required(),
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

/// All models served by the Odoo sandbox.
pub fn builtin_models() -> Vec<ModelDef> {
    vec![crm_lead(), crm_stage(), res_users(), ir_model()]
}
