//! Quay's JSON template language for webhook bodies (spec §2.3).
//!
//! A template is JSON text. Object keys and string values may hold `${path}` placeholders, where
//! `path` is a small JSONPath dialect (no leading `$`): `a.b.c`, `a[2]`, `tags[*]`, and mixes
//! such as `a.list[0].name`.
//! - A string that is exactly one placeholder becomes the raw value found: no match is `null`,
//!   several matches (from `[*]`) an array.
//! - A placeholder inside a longer string is replaced by text: no match is `(none)`, several
//!   matches are joined with `,`, strings are inserted without quotes and other values as JSON.
//!   (Quay fails on lists of non-strings here; we render them.)
//! - Numbers, booleans and `null` are left as they are; arrays are processed element by element.

use serde_json::{Map, Value};

/// Why a template was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template is not JSON.
    #[error("Could not parse template: {0}")]
    NotJson(String),
    /// `${}`.
    #[error("Empty expression found")]
    EmptyExpression,
    /// A path that does not parse.
    #[error("For expression `{expr}`: {reason}")]
    BadPath {
        /// The expression.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `${` without its `}`.
    #[error("Unterminated expression in `{0}`")]
    Unterminated(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

fn parse_path(expr: &str) -> Result<Vec<Step>, TemplateError> {
    let bad = |reason: &str| TemplateError::BadPath {
        expr: expr.to_owned(),
        reason: reason.to_owned(),
    };
    if expr.trim().is_empty() {
        return Err(TemplateError::EmptyExpression);
    }
    let mut steps = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    let mut expect_key = true;
    while i < b.len() {
        match b[i] {
            b'.' if !expect_key => {
                expect_key = true;
                i += 1;
            }
            b'[' => {
                let close = expr[i..].find(']').ok_or_else(|| bad("missing ]"))? + i;
                let inner = expr[i + 1..close].trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else {
                    steps.push(Step::Index(
                        inner.parse().map_err(|_| bad("index must be a number or *"))?,
                    ));
                }
                i = close + 1;
                expect_key = false;
            }
            _ if expect_key => {
                let end = expr[i..].find(['.', '[']).map_or(b.len(), |e| e + i);
                let key = expr[i..end].trim();
                let valid = !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
                if !valid {
                    return Err(bad(&format!("unexpected `{}`", &expr[i..end])));
                }
                steps.push(Step::Key(key.to_owned()));
                i = end;
                expect_key = false;
            }
            _ => return Err(bad(&format!("unexpected `{}`", &expr[i..]))),
        }
    }
    if expect_key {
        return Err(bad("path ends with `.`"));
    }
    Ok(steps)
}

/// The values a path finds in `data`.
fn find<'a>(steps: &[Step], data: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![data];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match (step, v) {
                (Step::Key(k), Value::Object(m)) => next.extend(m.get(k)),
                (Step::Index(n), Value::Array(a)) => next.extend(a.get(*n)),
                (Step::All, Value::Array(a)) => next.extend(a.iter()),
                (Step::All, Value::Object(m)) => next.extend(m.values()),
                _ => {}
            }
        }
        current = next;
    }
    current
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One piece of a string: literal text or a placeholder path.
enum Piece {
    Text(String),
    Expr(Vec<Step>),
}

fn split(s: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            out.push(Piece::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| TemplateError::Unterminated(s.to_owned()))?;
        out.push(Piece::Expr(parse_path(&after[..end])?));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_owned()));
    }
    Ok(out)
}

fn render_string(s: &str, data: &Value) -> Result<Value, TemplateError> {
    let pieces = split(s)?;
    if let [Piece::Expr(steps)] = pieces.as_slice() {
        let found = find(steps, data);
        return Ok(match found.as_slice() {
            [] => Value::Null,
            [one] => (*one).clone(),
            many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
        });
    }
    let mut text = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => text.push_str(&t),
            Piece::Expr(steps) => {
                let found = find(&steps, data);
                if found.is_empty() {
                    text.push_str("(none)");
                } else {
                    text.push_str(&found.iter().map(|v| as_text(v)).collect::<Vec<_>>().join(","));
                }
            }
        }
    }
    Ok(Value::String(text))
}

fn apply(t: &Value, data: &Value) -> Result<Value, TemplateError> {
    Ok(match t {
        Value::String(s) => render_string(s, data)?,
        Value::Array(a) => Value::Array(a.iter().map(|x| apply(x, data)).collect::<Result<_, _>>()?),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(as_text(&render_string(k, data)?), apply(v, data)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// A parsed webhook template.
#[derive(Debug, Clone)]
pub struct JsonTemplate(Value);

impl JsonTemplate {
    /// Parses a template and checks every placeholder, as Quay does at creation (it also applies the
    /// template once to `{}`).
    pub fn parse(text: &str) -> Result<JsonTemplate, TemplateError> {
        let v: Value = serde_json::from_str(text).map_err(|e| TemplateError::NotJson(e.to_string()))?;
        apply(&v, &Value::Object(Map::new()))?;
        Ok(JsonTemplate(v))
    }

    /// Renders the template against event data.
    pub fn render(&self, data: &Value) -> Result<Value, TemplateError> {
        apply(&self.0, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, data: Value) -> Value {
        JsonTemplate::parse(t).unwrap().render(&data).unwrap()
    }

    #[test]
    fn quays_own_cases() {
        // util/test/test_jsontemplate.py, case by case.
        assert_eq!(render("{}", json!({})), json!({}));
        assert_eq!(render(r#"{"hello":"world"}"#, json!({})), json!({"hello": "world"}));
        assert_eq!(
            render(r#"{"hello":"${thing}"}"#, json!({"thing": 1234})),
            json!({"hello": 1234})
        );
        assert_eq!(
            render(r#"{"hello":"cool-${thing}"}"#, json!({"thing": "beans"})),
            json!({"hello": "cool-beans"})
        );
        let nested = json!({"first": {"second": {"third": 42}}});
        assert_eq!(
            render(r#"{"hello":"${first.second.third}"}"#, nested.clone()),
            json!({"hello": 42})
        );
        assert_eq!(
            render(r#"{"hello":"${first.second.third} is the answer"}"#, nested.clone()),
            json!({"hello": "42 is the answer"})
        );
        assert_eq!(
            render(r#"{"hello":"${first.second.fourth}"}"#, nested),
            json!({"hello": null})
        );
        let list = json!({"first": [1, 2, 42]});
        assert_eq!(render(r#"{"hello":"${first[2]}"}"#, list.clone()), json!({"hello": 42}));
        assert_eq!(
            render(r#"{"hello":"${first[3]}"}"#, list.clone()),
            json!({"hello": null})
        );
        assert_eq!(
            render(r#"{"hello":"hey-${first[3]}"}"#, list.clone()),
            json!({"hello": "hey-(none)"})
        );
        assert_eq!(render(r#"["${first[1]}","${first[0]}"]"#, list), json!([2, 1]));
        let tags = json!({"tags": ["latest", "prod", "foo"]});
        assert_eq!(
            render(r#"{"hello":"${tags[*]}"}"#, tags.clone()),
            json!({"hello": ["latest", "prod", "foo"]})
        );
        assert_eq!(
            render(r#"{"hello":"tags: ${tags[*]}"}"#, tags),
            json!({"hello": "tags: latest,prod,foo"})
        );
    }

    #[test]
    fn rejections_carry_the_parser_message() {
        assert!(matches!(
            JsonTemplate::parse(r#"{"hello": "}"#),
            Err(TemplateError::NotJson(_))
        ));
        assert_eq!(
            JsonTemplate::parse(r#"{"a":"${}"}"#).unwrap_err(),
            TemplateError::EmptyExpression
        );
        assert_eq!(
            JsonTemplate::parse(r#"{"a":"${}"}"#).unwrap_err().to_string(),
            "Empty expression found"
        );
        for bad in [
            r#"{"a":"${;;}"}"#,
            r#"{"a":"${first[}"}"#,
            r#"{"a":"${a..b}"}"#,
            r#"{"a":"${a.}"}"#,
        ] {
            let e = JsonTemplate::parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("For expression `"), "{bad}: {e}");
        }
        assert!(matches!(
            JsonTemplate::parse(r#"{"a":"${open"}"#),
            Err(TemplateError::Unterminated(_))
        ));
    }

    #[test]
    fn keys_numbers_and_objects() {
        let data = json!({"repository": "acme/web", "n": {"x": 1}});
        assert_eq!(
            render(
                r#"{"${repository}": [1, true, null, "${n}"], "text": "obj ${n}"}"#,
                data
            ),
            json!({"acme/web": [1, true, null, {"x": 1}], "text": "obj {\"x\":1}"})
        );
    }
}
