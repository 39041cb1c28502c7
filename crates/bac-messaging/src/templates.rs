//! Email templates: stored per tenant and versioned (a new version per change, the old ones
//! kept so a delivery names exactly what it rendered), rendered with minijinja (Jinja syntax).
//! The variables a template uses are found when it is stored; a send that leaves one out is
//! refused before anything is queued, and rendering is strict (an undefined attribute is an
//! error, never an empty string in a customer's email). The HTML part is escaped.
use bac_runtime::{db::Pool, ErrorCode, ServiceError};
use chrono::{DateTime, Utc};
use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use crate::bad;

/// How much rendering work one template may do (minijinja's fuel: roughly one unit per
/// instruction), so a tenant's loop cannot hold a worker.
const FUEL: u64 = 500_000;
/// The largest rendered part.
const MAX_RENDERED: usize = 1_000_000;

/// The three parts of an email as stored or rendered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parts {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A stored version.
#[derive(Debug, Clone)]
pub struct Stored {
    pub name: String,
    pub version: u32,
    pub parts: Parts,
    pub description: String,
    pub variables: Vec<String>,
    pub created_at: DateTime<Utc>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

/// Part names as minijinja sees them: the extension decides escaping (`.html` escapes).
const SUBJECT: &str = "subject.txt";
const TEXT: &str = "text.txt";
const HTML: &str = "body.html";

/// The top-level variables the parts use, sorted; a syntax error names its part and line.
pub fn variables(parts: &Parts) -> Result<Vec<String>, ServiceError> {
    let env = environment();
    let mut names = std::collections::BTreeSet::new();
    for (name, source) in [
        (SUBJECT, &parts.subject),
        (TEXT, &parts.text),
        (HTML, &parts.html),
    ] {
        let t = env
            .template_from_named_str(name, source)
            .map_err(|e| syntax(name, &e))?;
        names.extend(t.undeclared_variables(false));
    }
    Ok(names.into_iter().collect())
}

fn part_label(name: &str) -> &'static str {
    match name {
        SUBJECT => "subject",
        TEXT => "text",
        _ => "html",
    }
}

fn syntax(name: &str, e: &minijinja::Error) -> ServiceError {
    let line = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
    bad(format!(
        "the template's {} does not parse{line}: {}",
        part_label(name),
        e.detail().unwrap_or(&e.kind().to_string())
    ))
}

/// Renders the parts with `vars` (a JSON object). Every variable the template uses must be
/// given; the subject must come out as one line.
pub fn render(parts: &Parts, vars: &Value) -> Result<Parts, ServiceError> {
    let empty = serde_json::Map::new();
    let given = match vars {
        Value::Null => &empty,
        Value::Object(m) => m,
        _ => return Err(bad("variables must be an object")),
    };
    let missing: Vec<String> = variables(parts)?
        .into_iter()
        .filter(|v| !given.contains_key(v))
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "the template uses variables that were not given: {}",
            missing.join(", ")
        ))
        .suggest("Give each in variables; GET the template to see the ones it uses"));
    }
    let env = environment();
    let ctx = minijinja::Value::from_serialize(given);
    let mut out = Parts::default();
    for (name, source, slot) in [
        (SUBJECT, &parts.subject, &mut out.subject),
        (TEXT, &parts.text, &mut out.text),
        (HTML, &parts.html, &mut out.html),
    ] {
        if source.is_empty() {
            continue;
        }
        let t = env
            .template_from_named_str(name, source)
            .map_err(|e| syntax(name, &e))?;
        let rendered = t.render(&ctx).map_err(|e| {
            let line = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
            bad(format!(
                "the template's {} could not be rendered{line}: {}",
                part_label(name),
                e.detail().unwrap_or(&e.kind().to_string())
            ))
        })?;
        if rendered.len() > MAX_RENDERED {
            return Err(bad(format!(
                "the rendered {} is larger than {MAX_RENDERED} bytes",
                part_label(name)
            )));
        }
        *slot = rendered;
    }
    out.subject = out.subject.trim().to_string();
    if out.subject.contains(['\r', '\n']) {
        return Err(bad("the rendered subject spans several lines"));
    }
    Ok(out)
}

/// The most characters of a subject (RFC 5322's line) and of a text or HTML part (what the
/// gateway's 1 MiB body holds for both).
pub const MAX_SUBJECT: usize = 998;
pub const MAX_PART: usize = 200_000;

/// The limits above, for callers that do not pass the gateway (gRPC inside the cluster).
pub fn check_lengths(parts: &Parts) -> Result<(), ServiceError> {
    for (field, value, max) in [
        ("subject", &parts.subject, MAX_SUBJECT),
        ("text", &parts.text, MAX_PART),
        ("html", &parts.html, MAX_PART),
    ] {
        if value.chars().count() > max {
            return Err(bad(format!("{field} must be at most {max} characters")));
        }
    }
    Ok(())
}

/// Template names: `welcome`, `invoice.reminder`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

use crate::db_err;

fn stored(r: &tokio_postgres::Row) -> Stored {
    Stored {
        name: r.get("name"),
        version: r.get::<_, i32>("version") as u32,
        parts: Parts {
            subject: r.get("subject"),
            text: r.get("text_body"),
            html: r.get("html_body"),
        },
        description: r.get("description"),
        variables: r.get("variables"),
        created_at: r.get("created_at"),
    }
}

fn not_found(name: &str, version: u32) -> ServiceError {
    let what = if version == 0 {
        format!("template {name:?} does not exist")
    } else {
        format!("template {name:?} has no version {version}")
    };
    ServiceError::new("messaging", ErrorCode::NotFound, what)
        .suggest("List templates with GET /api/v1/messaging/templates")
}

/// Stores `parts` as the next version of `name`; content equal to the latest version answers
/// that version. Versions are numbered under a row lock, so two concurrent puts get two.
pub async fn put(
    db: &Pool,
    tenant: &str,
    name: &str,
    parts: &Parts,
    description: &str,
) -> Result<(Stored, bool), ServiceError> {
    if !valid_name(name) {
        return Err(bad(
            "name must be 1 to 100 lower-case letters, digits, '_', '.' or '-', starting with a letter or digit",
        ));
    }
    if parts.subject.trim().is_empty() {
        return Err(bad("subject is required"));
    }
    check_lengths(parts)?;
    if parts.text.is_empty() && parts.html.is_empty() {
        return Err(bad("a template needs text, html or both"));
    }
    let vars = variables(parts)?;
    let mut client = db.get().await.map_err(db_err)?;
    let tx = client.transaction().await.map_err(db_err)?;
    // one writer per (tenant, name) at a time: the advisory lock lives until commit
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("messaging-template/{tenant}/{name}")],
    )
    .await
    .map_err(db_err)?;
    let latest = tx
        .query_opt(
            "SELECT * FROM templates WHERE tenant_id = $1 AND name = $2
             ORDER BY version DESC LIMIT 1",
            &[&tenant, &name],
        )
        .await
        .map_err(db_err)?
        .map(|r| stored(&r));
    if let Some(l) = &latest {
        if &l.parts == parts && l.description == description {
            return Ok((l.clone(), false));
        }
    }
    let version = latest.map_or(1, |l| l.version as i32 + 1);
    let row = tx
        .query_one(
            "INSERT INTO templates (tenant_id, name, version, subject, text_body, html_body,
                                    description, variables)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
            &[
                &tenant,
                &name,
                &version,
                &parts.subject,
                &parts.text,
                &parts.html,
                &description,
                &vars,
            ],
        )
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok((stored(&row), true))
}

/// Version `version` of `name` (0: the latest).
pub async fn get(
    db: &Pool,
    tenant: &str,
    name: &str,
    version: u32,
) -> Result<Stored, ServiceError> {
    if !valid_name(name) {
        return Err(not_found(name, version));
    }
    let client = db.get().await.map_err(db_err)?;
    let row = client
        .query_opt(
            "SELECT * FROM templates WHERE tenant_id = $1 AND name = $2
               AND ($3 = 0 OR version = $3)
             ORDER BY version DESC LIMIT 1",
            &[&tenant, &name, &(version as i32)],
        )
        .await
        .map_err(db_err)?;
    row.map(|r| stored(&r))
        .ok_or_else(|| not_found(name, version))
}

/// The latest version of each of the tenant's templates, by name.
pub async fn list(db: &Pool, tenant: &str) -> Result<Vec<Stored>, ServiceError> {
    let client = db.get().await.map_err(db_err)?;
    let rows = client
        .query(
            "SELECT DISTINCT ON (name) * FROM templates WHERE tenant_id = $1
             ORDER BY name, version DESC",
            &[&tenant],
        )
        .await
        .map_err(db_err)?;
    Ok(rows.iter().map(stored).collect())
}

/// Deletes every version of `name`; how many there were.
pub async fn delete(db: &Pool, tenant: &str, name: &str) -> Result<u32, ServiceError> {
    let client = db.get().await.map_err(db_err)?;
    let n = client
        .execute(
            "DELETE FROM templates WHERE tenant_id = $1 AND name = $2",
            &[&tenant, &name],
        )
        .await
        .map_err(db_err)?;
    if n == 0 {
        return Err(not_found(name, 0));
    }
    Ok(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(subject: &str, text: &str, html: &str) -> Parts {
        Parts {
            subject: subject.into(),
            text: text.into(),
            html: html.into(),
        }
    }

    #[test]
    fn variables_are_found_in_every_part() {
        let p = parts(
            "Invoice {{ invoice.number }}",
            "Dear {{ name }}",
            "{% for l in lines %}{{ l }}{% endfor %}",
        );
        assert_eq!(variables(&p).unwrap(), vec!["invoice", "lines", "name"]);
    }

    #[test]
    fn a_missing_variable_is_named_before_rendering() {
        let p = parts("Hi {{ name }}", "{{ name }} owes {{ amount }}", "");
        let e = render(&p, &json!({"name": "Ada"})).unwrap_err();
        assert!(e.message.contains("amount"), "{}", e.message);
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let p = parts("Hi {{ name }}", "{{ name }}", "<p>{{ name }}</p>");
        let r = render(&p, &json!({"name": "<b>Ada & co</b>"})).unwrap();
        assert_eq!(r.text, "<b>Ada & co</b>");
        assert_eq!(r.html, "<p>&lt;b&gt;Ada &amp; co&lt;&#x2f;b&gt;</p>");
    }

    #[test]
    fn an_undefined_attribute_is_an_error_not_an_empty_string() {
        let p = parts("Hi", "{{ user.missing }}", "");
        assert!(render(&p, &json!({"user": {"name": "x"}})).is_err());
    }

    #[test]
    fn a_subject_that_renders_to_two_lines_is_refused() {
        let p = parts("Hi {{ name }}", "x", "");
        let e = render(&p, &json!({"name": "a\r\nBcc: evil@example.com"})).unwrap_err();
        assert!(e.message.contains("several lines"), "{}", e.message);
    }

    #[test]
    fn a_syntax_error_names_its_part_and_line() {
        let p = parts("Hi", "line one\n{% if %}", "");
        let e = variables(&p).unwrap_err();
        assert!(
            e.message.contains("text") && e.message.contains("line 2"),
            "{}",
            e.message
        );
    }

    #[test]
    fn an_endless_template_runs_out_of_fuel() {
        let p = parts(
            "Hi",
            "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
            "",
        );
        assert!(render(&p, &json!({})).is_err());
    }
}
