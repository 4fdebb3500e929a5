//! Output formatting shared by every command: the Go template engine, docker's tabwriter
//! settings, go-units humanizers, and the table/`--format` driver that ties them together
//! the way docker's `formatter.Context` does.

pub mod humanize;
pub mod tabwriter;
pub mod template;

use serde_json::Value;

use template::{ExecOptions, Template, TemplateError};

/// A `--format` value understood: `table`, `table TEMPLATE`, `json`, or a raw template.
#[derive(Debug, Clone)]
pub struct Format {
    table: bool,
    template: Template,
}

impl Format {
    /// Build from the user's `--format` (or `None`) and the command's default table template
    /// (without the `table ` prefix). `\t` and `\n` escapes are replaced, as docker does.
    pub fn new(user: Option<&str>, default_table: &str) -> Result<Format, TemplateError> {
        let f = user.unwrap_or("table");
        let (table, body) = if f == "table" {
            (true, default_table.to_string())
        } else if let Some(rest) = f.strip_prefix("table ") {
            (true, rest.to_string())
        } else if f == "json" {
            (false, "{{json .}}".to_string())
        } else {
            (false, f.to_string())
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        Ok(Format {
            table,
            template: Template::parse(&body)?,
        })
    }

    /// True when output goes through the tabwriter with a header.
    pub fn is_table(&self) -> bool {
        self.table
    }

    /// Render `rows` (each followed by a newline) and, for tables, the header from `header`
    /// (an object mapping field names to column titles), then align.
    pub fn render(&self, header: &Value, rows: &[Value]) -> Result<String, TemplateError> {
        let mut body = String::new();
        for r in rows {
            let mut r = r.clone();
            if let Value::Object(o) = &mut r {
                o.insert(template::ROW_KEY.to_string(), Value::Bool(true));
            }
            body.push_str(&self.template.execute(&r)?);
            body.push('\n');
        }
        if !self.table {
            return Ok(body);
        }
        let mut text = self
            .template
            .execute_with(header, ExecOptions { header: true })?;
        text.push('\n');
        text.push_str(&body);
        Ok(tabwriter::align(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_and_raw_formats() {
        let header = json!({"ID": "CONTAINER ID", "Names": "NAMES"});
        let rows = vec![json!({"ID": "abc", "Names": "web"})];
        let f = Format::new(Some("table {{.ID}}\\t{{.Names}}"), "").expect("valid");
        assert_eq!(
            f.render(&header, &rows).expect("renders"),
            "CONTAINER ID   NAMES\nabc            web\n"
        );
        let f = Format::new(Some("{{.Names}}"), "").expect("valid");
        assert_eq!(f.render(&header, &rows).expect("renders"), "web\n");
        let f = Format::new(Some("json"), "").expect("valid");
        assert_eq!(
            f.render(&header, &rows).expect("renders"),
            "{\"ID\":\"abc\",\"Names\":\"web\"}\n"
        );
    }
}
