//! The fingerprint: a hash of what a stored state means, so that a state is only ever
//! resumed by a definition that reads it as it was written.
//!
//! It covers the state enum (each variant's name, and its fields' names and types, in
//! order), the encoding of states, the workflow's name and the graph's shape (nodes,
//! kinds, edges, children, callbacks' value types), never a policy: changing a retry or a
//! timeout must not park the executions in flight.
//!
//! The text hashed is written here, from the IR, so that it depends on nothing but the
//! definition: not on the compiler that expands it (rustc's printing of tokens has changed
//! between releases, which would park every execution in flight at a toolchain upgrade),
//! nor on how the user's code is formatted. `legacy.rs` computes the fingerprints of
//! earlier builds, which did hash rustc's text.

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// The first line of the text hashed: what this fingerprint is. Changing anything below
/// (what is hashed, how it is written, how states are encoded) changes every workflow's
/// fingerprint: it needs a new version here, and the current fingerprint kept as a legacy
/// one (`legacy.rs`), or every execution in flight is parked at the upgrade.
const VERSION: &str = "#[workflow] fingerprint 3; states as [tag, field, …]";

/// What the fingerprint is computed from, written as the macro goes.
pub(crate) struct Text(String);

impl Text {
    pub(crate) fn new(workflow: &str) -> Text {
        let mut text = String::with_capacity(1024);
        text.push_str(VERSION);
        text.push_str("\nworkflow ");
        text.push_str(workflow);
        Text(text)
    }

    /// Starts a line: a state variant, the graph, a child, a callback.
    pub(crate) fn line(&mut self, what: &str) -> &mut Text {
        self.0.push('\n');
        self.0.push_str(what);
        self
    }

    /// Adds a word (a name, a number, the graph's JSON) to the current line.
    pub(crate) fn word(&mut self, word: &str) -> &mut Text {
        self.0.push(' ');
        self.0.push_str(word);
        self
    }

    /// Adds tokens (a type, a path) to the current line, canonically: every token as it
    /// is spelled, each followed by one space, groups between their delimiters (none
    /// for an invisible group, as a type passed through `macro_rules!` is). Spacing and
    /// spans are not part of it: `Vec<Vec<u8> >` and `Vec<Vec<u8>>` are the same type.
    pub(crate) fn tokens(&mut self, tokens: TokenStream) -> &mut Text {
        self.0.push(' ');
        canonical(tokens, &mut self.0);
        self
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        fnv(&self.0)
    }
}

fn canonical(tokens: TokenStream, out: &mut String) {
    for tree in tokens {
        match tree {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("( ", ") "),
                    Delimiter::Brace => ("{ ", "} "),
                    Delimiter::Bracket => ("[ ", "] "),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                canonical(g.stream(), out);
                out.push_str(close);
            }
            TokenTree::Ident(i) => {
                out.push_str(&i.to_string());
                out.push(' ');
            }
            TokenTree::Punct(p) => {
                out.push(p.as_char());
                out.push(' ');
            }
            TokenTree::Literal(l) => {
                out.push_str(&l.to_string());
                out.push(' ');
            }
        }
    }
}

/// FNV-1a: stable across compiler versions and platforms (unlike `DefaultHasher`).
pub(crate) fn fnv(text: &str) -> u64 {
    // An indexed loop: Cargo builds proc macros unoptimized, where an iterator chain
    // costs a few calls per byte.
    let bytes = text.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::Text;
    use quote::quote;

    fn text(tokens: proc_macro2::TokenStream) -> String {
        let mut text = Text(String::new());
        text.tokens(tokens);
        text.0
    }

    #[test]
    fn tokens_are_written_whatever_their_spacing() {
        let tight: proc_macro2::TokenStream = "Vec<Vec<u8>>".parse().unwrap();
        let loose: proc_macro2::TokenStream = "Vec < Vec < u8 > >".parse().unwrap();
        assert_eq!(text(tight), text(loose));
        assert_eq!(
            text(quote!(::std::collections::BTreeMap<String, [u8; 4]>)),
            " : : std : : collections : : BTreeMap < String , [ u8 ; 4 ] > "
        );
    }

    #[test]
    fn different_types_are_different_text() {
        assert_ne!(text(quote!(Vec<u8>)), text(quote!(Vec<u16>)));
        assert_ne!(text(quote!((u8, u16))), text(quote!([u8; 16])));
        assert_ne!(text(quote!(r#type)), text(quote!(type)));
    }

    #[test]
    fn an_invisible_group_is_its_contents() {
        let inner = quote!(Vec<u8>);
        let group = proc_macro2::Group::new(proc_macro2::Delimiter::None, inner.clone());
        let wrapped: proc_macro2::TokenStream = proc_macro2::TokenTree::Group(group).into();
        assert_eq!(text(wrapped), text(inner));
    }
}
