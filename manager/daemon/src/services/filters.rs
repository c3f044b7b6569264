//! containerd's list filters, the part its clients send: each filter is a
//! comma-separated list of conditions that must all hold (`name==x`,
//! `labels."k"==v`, `labels.k!=v`, `labels.k` for presence); a list of
//! filters matches what any one of them matches. Anything else (regular
//! expressions, `~=`) is refused as an invalid argument, never ignored.

use tonic::Status;

#[derive(Debug, PartialEq, Eq)]
enum Op {
    Present,
    Equal(String),
    NotEqual(String),
}

#[derive(Debug, PartialEq, Eq)]
struct Condition {
    field: Vec<String>,
    op: Op,
}

/// Parsed filters; the empty list matches everything.
#[derive(Debug, Default)]
pub struct Filters(Vec<Vec<Condition>>);

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        s[1..s.len() - 1].replace("\\\"", "\"")
    } else {
        s.to_string()
    }
}

/// `labels."a.b/c".x` → ["labels", "a.b/c", "x"].
fn field_path(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.trim().chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == sep && !quoted {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

impl Filters {
    pub fn parse(filters: &[String]) -> Result<Filters, Status> {
        let mut all = Vec::new();
        for f in filters.iter().filter(|f| !f.trim().is_empty()) {
            let mut conditions = Vec::new();
            for part in split_outside_quotes(f, ',') {
                let bad = || {
                    Status::invalid_argument(format!("filter {f:?}: unsupported condition {part:?} (hulld supports field==value, field!=value and field)"))
                };
                if part.contains("~=") {
                    return Err(bad());
                }
                let condition = if let Some((k, v)) = part.split_once("!=") {
                    Condition {
                        field: field_path(k),
                        op: Op::NotEqual(unquote(v)),
                    }
                } else if let Some((k, v)) = part.split_once("==") {
                    Condition {
                        field: field_path(k),
                        op: Op::Equal(unquote(v)),
                    }
                } else if part.contains('=') {
                    return Err(bad());
                } else {
                    Condition {
                        field: field_path(&part),
                        op: Op::Present,
                    }
                };
                if condition.field.iter().any(|p| p.is_empty()) {
                    return Err(bad());
                }
                conditions.push(condition);
            }
            all.push(conditions);
        }
        Ok(Filters(all))
    }

    /// Whether an object matches; `field` looks up a field path in it.
    pub fn matches(&self, field: impl Fn(&[String]) -> Option<String>) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|conditions| {
                conditions.iter().all(|c| {
                    let value = field(&c.field);
                    match &c.op {
                        Op::Present => value.is_some(),
                        Op::Equal(v) => value.as_deref() == Some(v.as_str()),
                        Op::NotEqual(v) => value.as_deref() != Some(v.as_str()),
                    }
                })
            })
    }
}

/// Field lookup for objects with a name-like field and labels.
pub fn lookup(
    path: &[String],
    plain: &[(&str, &str)],
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    match path {
        [one] => plain
            .iter()
            .find(|(k, _)| k == one)
            .map(|(_, v)| v.to_string()),
        [l, rest @ ..] if l == "labels" && !rest.is_empty() => labels.get(&rest.join(".")).cloned(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn containerd_filter_syntax() {
        let labels: BTreeMap<String, String> =
            [("io.kind".to_string(), "sandbox".to_string())].into();
        let get = |p: &[String]| lookup(p, &[("name", "app")], &labels);
        let f = |s: &[&str]| Filters::parse(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert!(f(&[]).unwrap().matches(get));
        assert!(f(&["name==app"]).unwrap().matches(get));
        assert!(!f(&["name==other"]).unwrap().matches(get));
        assert!(f(&[r#"labels."io.kind"==sandbox,name==app"#])
            .unwrap()
            .matches(get));
        assert!(f(&["labels.io.kind"]).unwrap().matches(get));
        assert!(!f(&["labels.missing"]).unwrap().matches(get));
        assert!(f(&["name==x", "name!=x"]).unwrap().matches(get));
        assert!(f(&["name~=a.*"]).is_err());
        assert!(f(&["name=a"]).is_err());
    }
}
