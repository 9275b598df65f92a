//! Collects errors so one compile reports every mistake, as serde_derive's `Ctxt` does.

use std::fmt::Display;

use quote::ToTokens;

#[derive(Default)]
pub(crate) struct Errors {
    first: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.first {
            Some(first) => first.combine(error),
            None => self.first = Some(error),
        }
    }

    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn at(&mut self, span: proc_macro2::Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn check(self) -> syn::Result<()> {
        self.first.map_or(Ok(()), Err)
    }
}

/// The message for an unknown option `given` of `what`: it names the option, suggests
/// the closest valid one (by spelling, or by meaning for the names users reach for
/// first), and lists them all.
pub(crate) fn unknown_option(what: &str, given: &str, options: &[&str]) -> String {
    // Names taken from other engines' settings, which spelling alone would not match.
    const MEANS: [(&str, &str); 6] = [
        ("retries", "max_attempts"),
        ("attempts", "max_attempts"),
        ("backoff_rate", "backoff"),
        ("delay", "interval"),
        ("concurrency", "max_concurrency"),
        ("errors", "max_errors"),
    ];
    let by_meaning = MEANS
        .iter()
        .find(|(alias, meant)| *alias == given && options.contains(meant))
        .map(|(_, meant)| *meant);
    let by_spelling = || {
        options
            .iter()
            .map(|o| (strsim::damerau_levenshtein(given, o), *o))
            .filter(|(d, o)| *d <= (o.len() / 3).max(2))
            .min()
            .map(|(_, o)| o)
    };
    let list = match options {
        [] => String::new(),
        [one] => format!("`{one}`"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|o| format!("`{o}`")).collect();
            format!("{} and `{last}`", init.join(", "))
        }
    };
    match by_meaning.or_else(by_spelling) {
        Some(closest) => format!(
            "unknown {what} option `{given}`; did you mean `{closest}`? The options are {list}"
        ),
        None => format!("unknown {what} option `{given}`; the options are {list}"),
    }
}
