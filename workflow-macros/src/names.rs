//! Readable, unique names for states, derived from the code.

use std::collections::HashSet;

use quote::ToTokens;
use syn::Expr;

/// Step Functions caps state names at 80 characters.
pub(crate) const MAX_NAME: usize = 80;

/// The name of a call as a reader would say it: `svc.start`, `fetch`, `http::get`.
pub(crate) fn call_name(expr: &Expr) -> String {
    match expr {
        Expr::MethodCall(m) => match receiver_name(&m.receiver) {
            Some(r) => format!("{r}.{}", m.method),
            None => m.method.to_string(),
        },
        Expr::Call(c) => match &*c.func {
            Expr::Path(p) => path_name(&p.path),
            _ => "task".to_owned(),
        },
        Expr::Paren(p) => call_name(&p.expr),
        Expr::Path(p) => path_name(&p.path),
        _ => "task".to_owned(),
    }
}

fn receiver_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) => Some(path_name(&p.path)),
        Expr::Field(f) => {
            let base = receiver_name(&f.base)?;
            Some(format!("{base}.{}", f.member.to_token_stream()))
        }
        Expr::MethodCall(m) => {
            let base = receiver_name(&m.receiver)?;
            Some(format!("{base}.{}", m.method))
        }
        Expr::Reference(r) => receiver_name(&r.expr),
        Expr::Paren(p) => receiver_name(&p.expr),
        _ => None,
    }
}

/// The last two segments of a path (`http::get`), enough to read and short enough to fit.
pub(crate) fn path_name(path: &syn::Path) -> String {
    let segs: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let from = segs.len().saturating_sub(2);
    segs[from..].join("::")
}

/// Makes each name unique (`name`, `name #2`, …) and at most [`MAX_NAME`] characters.
pub(crate) fn uniquify(names: Vec<String>) -> Vec<String> {
    let mut taken = HashSet::new();
    names
        .into_iter()
        .map(|name| {
            let mut n = 1;
            loop {
                let suffix = if n == 1 {
                    String::new()
                } else {
                    format!(" #{n}")
                };
                let room = MAX_NAME - suffix.len();
                let base: String = name.chars().take(room).collect();
                let candidate = format!("{base}{suffix}");
                if taken.insert(candidate.clone()) {
                    return candidate;
                }
                n += 1;
            }
        })
        .collect()
}

/// `poll svc.status #2` → `PollSvcStatus2`: a Rust identifier for a state variant.
pub(crate) fn camel(name: &str) -> String {
    let mut out = String::new();
    for word in name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 'S');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_like_the_code() {
        let name = |s: &str| call_name(&syn::parse_str(s).unwrap());
        assert_eq!(name("svc.start(&req)"), "svc.start");
        assert_eq!(name("self.client.jobs().get(id)"), "self.client.jobs.get");
        assert_eq!(name("api::jobs::fetch(1)"), "jobs::fetch");
        assert_eq!(name("(make())(1)"), "task");
    }

    #[test]
    fn uniquify_numbers_repeats_and_caps_length() {
        let long = "x".repeat(100);
        let out = uniquify(vec!["a".into(), "a".into(), long.clone(), long]);
        assert_eq!(out[0], "a");
        assert_eq!(out[1], "a #2");
        assert_eq!(out[2].len(), MAX_NAME);
        assert!(out[3].ends_with(" #2") && out[3].len() == MAX_NAME);
    }

    #[test]
    fn camel_makes_identifiers() {
        assert_eq!(camel("poll svc.status #2"), "PollSvcStatus2");
        assert_eq!(camel("jobs::fetch"), "JobsFetch");
        assert_eq!(camel("2nd"), "S2nd");
    }
}
