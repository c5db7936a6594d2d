//! The subset of X-Ray filter expressions the local API understands, joined with `AND`:
//! `service("NAME")`, `http.status = N`, `fault`, `error`, `throttle`, `ok`,
//! `annotation.KEY = VALUE` (a quoted string, a number, `true` or `false`), and
//! `duration` / `responsetime` compared with `>`, `>=`, `<`, `<=` or `=` to seconds.

use anyhow::{Context, bail};

/// One condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `service("NAME")`: some segment of the trace has this name.
    Service(String),
    /// `http.status = N` on the entry segment.
    HttpStatus(u16),
    /// `fault`.
    Fault,
    /// `error`.
    Error,
    /// `throttle`.
    Throttle,
    /// `ok`: no fault, error or throttle.
    Ok,
    /// `annotation.KEY = VALUE`.
    Annotation(String, AnnotationMatch),
    /// `duration OP N`.
    Duration(Comparison, f64),
    /// `responsetime OP N`.
    ResponseTime(Comparison, f64),
}

/// An annotation value to compare with.
#[derive(Debug, Clone, PartialEq)]
pub enum AnnotationMatch {
    /// A string.
    Text(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Boolean(bool),
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `>`.
    Greater,
    /// `>=`.
    GreaterOrEqual,
    /// `<`.
    Less,
    /// `<=`.
    LessOrEqual,
    /// `=`.
    Equal,
}

impl Comparison {
    /// Whether `left OP right`.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Self::Greater => left > right,
            Self::GreaterOrEqual => left >= right,
            Self::Less => left < right,
            Self::LessOrEqual => left <= right,
            Self::Equal => (left - right).abs() < 1e-9,
        }
    }
}

/// Parses an expression into conditions that must all hold.
pub fn parse_filter(expression: &str) -> anyhow::Result<Vec<Condition>> {
    let mut conditions = Vec::new();
    for part in split_and(expression) {
        let part = part.trim();
        if part.is_empty() {
            bail!("an empty condition in {expression:?}");
        }
        conditions.push(parse_condition(part).with_context(|| format!("cannot read {part:?}"))?);
    }
    Ok(conditions)
}

/// Splits on `AND` / `&&` outside quotes.
fn split_and(expression: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut in_quotes = false;
    let chars: Vec<char> = expression.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if !in_quotes {
            let five: String = chars[i..].iter().take(5).collect();
            let symbol = five.starts_with("&&");
            if symbol || five.eq_ignore_ascii_case(" and ") {
                parts.push(String::new());
                i += if symbol { 2 } else { 5 };
                continue;
            }
        }
        parts.last_mut().expect("never empty").push(c);
        i += 1;
    }
    parts
}

fn parse_condition(text: &str) -> anyhow::Result<Condition> {
    let lower = text.to_ascii_lowercase();
    match lower.as_str() {
        "fault" => return Ok(Condition::Fault),
        "error" => return Ok(Condition::Error),
        "throttle" => return Ok(Condition::Throttle),
        "ok" => return Ok(Condition::Ok),
        _ => {}
    }
    if lower.starts_with("service(") {
        let inside = text[8..]
            .strip_suffix(')')
            .context("service( is not closed")?;
        return Ok(Condition::Service(unquote(inside.trim())?));
    }
    let (left, op, right) = split_comparison(text)?;
    let left_lower = left.to_ascii_lowercase();
    match left_lower.as_str() {
        "http.status" => {
            anyhow::ensure!(op == Comparison::Equal, "http.status only supports =");
            Ok(Condition::HttpStatus(
                right.parse().context("http.status needs a number")?,
            ))
        }
        "duration" => Ok(Condition::Duration(
            op,
            right.parse().context("duration needs seconds")?,
        )),
        "responsetime" => Ok(Condition::ResponseTime(
            op,
            right.parse().context("responsetime needs seconds")?,
        )),
        _ if left_lower.starts_with("annotation.") || left_lower.starts_with("annotation[") => {
            anyhow::ensure!(op == Comparison::Equal, "annotations only support =");
            let key = left[11..]
                .trim_end_matches(']')
                .trim_matches('"')
                .to_string();
            let value = if right.starts_with('"') {
                AnnotationMatch::Text(unquote(right)?)
            } else if right.eq_ignore_ascii_case("true") || right.eq_ignore_ascii_case("false") {
                AnnotationMatch::Boolean(right.eq_ignore_ascii_case("true"))
            } else {
                AnnotationMatch::Number(
                    right
                        .parse()
                        .context("an annotation value is a \"string\", a number or a boolean")?,
                )
            };
            Ok(Condition::Annotation(key, value))
        }
        _ => bail!("unsupported keyword {left:?}"),
    }
}

fn split_comparison(text: &str) -> anyhow::Result<(&str, Comparison, &str)> {
    for (symbol, op) in [
        (">=", Comparison::GreaterOrEqual),
        ("<=", Comparison::LessOrEqual),
        (">", Comparison::Greater),
        ("<", Comparison::Less),
        ("=", Comparison::Equal),
    ] {
        if let Some((left, right)) = text.split_once(symbol) {
            return Ok((left.trim(), op, right.trim()));
        }
    }
    bail!("expected a comparison (=, >, >=, <, <=)")
}

fn unquote(text: &str) -> anyhow::Result<String> {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .map(str::to_string)
        .context("expected a quoted string")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_subset() {
        assert_eq!(
            parse_filter(r#"service("Backend #1") AND http.status = 200 and duration > 0.5"#)
                .unwrap(),
            vec![
                Condition::Service("Backend #1".into()),
                Condition::HttpStatus(200),
                Condition::Duration(Comparison::Greater, 0.5),
            ]
        );
        assert_eq!(parse_filter("fault").unwrap(), vec![Condition::Fault]);
        assert_eq!(
            parse_filter("error && throttle").unwrap(),
            vec![Condition::Error, Condition::Throttle]
        );
        assert_eq!(
            parse_filter(r#"annotation.backend = "Backend #1 AND more""#).unwrap(),
            vec![Condition::Annotation(
                "backend".into(),
                AnnotationMatch::Text("Backend #1 AND more".into())
            )]
        );
        assert_eq!(
            parse_filter("annotation.day = 25 AND annotation.ok = true AND responsetime <= 2")
                .unwrap(),
            vec![
                Condition::Annotation("day".into(), AnnotationMatch::Number(25.0)),
                Condition::Annotation("ok".into(), AnnotationMatch::Boolean(true)),
                Condition::ResponseTime(Comparison::LessOrEqual, 2.0),
            ]
        );
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            "",
            "service(BFF)",
            "http.status > 200",
            "user = \"x\"",
            "duration > soon",
            "fault AND",
            "annotation.x > 1",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
