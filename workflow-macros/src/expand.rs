//! The pipeline, and what is emitted when it fails.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;

use crate::codegen::Codegen;
use crate::errors::Errors;
use crate::parse::{self, Args, Ret, WorkflowFn};
use crate::policy;
use crate::{analyze, lower};

/// Whether to compute the fingerprints earlier builds gave each definition, so that
/// what they stored still resumes (`legacy.rs`): the `legacy-fingerprints` feature. Not
/// in the macro's own tests, whose expansions must not depend on the features Cargo
/// unified for the workspace: they ask for it where they test it.
const LEGACY: bool = cfg!(all(feature = "legacy-fingerprints", not(test)));

/// The attribute: the expansion, or on error the errors plus a stand-in definition.
pub(crate) fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    match run(args, item.clone(), LEGACY) {
        Ok(tokens) => tokens,
        Err(Rejected { error, stub }) => {
            let error = error.to_compile_error();
            // Without a usable signature there is nothing to stand in for: keep the item
            // (so IDEs still see it) and report.
            let stub = stub.unwrap_or_else(|| without_body(item));
            quote!(#stub #error)
        }
    }
}

/// A rejected item as written, but a function's body replaced: its `poll_until!`,
/// `call_nested!` and `sleep!` were not lowered, and expanding them would add their
/// "outside a workflow" errors to the one that says what is wrong with the signature.
fn without_body(item: TokenStream) -> TokenStream {
    match syn::parse2::<ItemFn>(item.clone()) {
        Ok(mut f) => {
            f.block = syn::parse_quote!({ ::core::unimplemented!("rejected by #[workflow]") });
            f.attrs
                .push(syn::parse_quote!(#[allow(unused_variables, dead_code)]));
            quote!(#f)
        }
        Err(_) => item,
    }
}

/// The expansion as a library function: tokens in, the generated code or every error
/// (combined, each spanned on the user's tokens) out.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    run(args, item, LEGACY).map_err(|r| r.error)
}

struct Rejected {
    error: syn::Error,
    /// A definition of the workflow that keeps the rest of the crate compiling.
    stub: Option<TokenStream>,
}

fn run(args: TokenStream, item: TokenStream, legacy: bool) -> Result<TokenStream, Rejected> {
    let mut errors = Errors::default();
    let args = parse::args(args).map_err(|e| errors.push(e)).ok();
    let parsed = syn::parse2::<ItemFn>(item).and_then(parse::function);
    let f = match parsed {
        Ok(f) => f,
        Err(e) => {
            errors.push(e);
            let error = errors.check().expect_err("an error was just pushed");
            return Err(Rejected { error, stub: None });
        }
    };
    let krate = args
        .as_ref()
        .map_or_else(|| syn::parse_quote!(::workflow), |a| a.krate.clone());
    let name = workflow_name(args.as_ref(), &f);
    let attrs = parse::forwarded_attrs(&f.attrs, &mut errors);
    let wf = quote!(#krate::__private);
    let mut body = analyze::body(&f, &wf, &mut errors);
    let default_retry = args.as_ref().and_then(|a| a.retry.as_ref());
    policy::resolve(&mut body.yields, default_retry, &mut errors);
    let generated = errors.check().and_then(|()| {
        // The arms are emitted inside the `const _` block, which imports `__private` as
        // `__wf` (`Codegen::wf`).
        let ir = lower::lower(&f, &body, &quote!(__wf))?;
        Ok(Codegen {
            f: &f,
            body: &body,
            ir: &ir,
            name: name.clone(),
            krate: &krate,
            attrs: &attrs,
            timeout: args.as_ref().and_then(|a| a.timeout.as_ref()),
            legacy,
        }
        .emit())
    });
    generated.map_err(|error| Rejected {
        error,
        stub: Some(fallback(&f, &krate, &name)),
    })
}

fn workflow_name(args: Option<&Args>, f: &WorkflowFn) -> String {
    args.and_then(|a| a.name.as_ref())
        .map_or_else(|| f.ident.to_string(), |n| n.value())
}

/// After an error in the body, still define the workflow with its signature's types, so
/// code that registers or calls it does not add a cascade of errors to the real one.
fn fallback(f: &WorkflowFn, krate: &syn::Path, name: &str) -> TokenStream {
    let wf = quote!(#krate::__private);
    let ident = &f.ident;
    let vis = &f.vis;
    let tys = f.inputs.iter().map(|p| &p.ty);
    let input = quote!((#(#tys,)*));
    let (ok, err) = match &f.ret {
        Ret::Fallible { ok, err, .. } => (quote!(#ok), quote!(#err)),
        Ret::Plain(t) => (quote!(#t), quote!(#wf::NoError)),
    };
    let input = if f.inputs.len() == 1 {
        let t = &f.inputs[0].ty;
        quote!(#t)
    } else {
        input
    };
    quote! {
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #ident;

        impl #wf::Workflow for #ident {
            const NAME: &'static str = #name;
            const FINGERPRINT: u64 = 0;
            type Input = #input;
            type Output = #ok;
            type Error = #err;
            type State = #wf::codegen::persist::Rejected;
            fn graph() -> &'static #wf::StateGraph { ::core::unreachable!() }
            fn link<__WfLinker: #wf::codegen::Linker>(_: &mut __WfLinker) {}
            fn start(_: Self::Input) -> Self::State { ::core::unreachable!() }
            fn step<'__wf>(
                _: Self::State,
                _: &'__wf #wf::Deps,
                _: &'__wf mut #wf::codegen::StepCx,
            ) -> impl ::core::future::Future<Output = ::core::result::Result<#wf::codegen::Step<Self>, Self::Error>>
                   + ::core::marker::Send + '__wf {
                async { ::core::unreachable!() }
            }
            fn resumes_at(_: &Self::State) -> #wf::codegen::ResumePoint {
                ::core::unreachable!()
            }
        }
    }
}

/// Expansion snapshots: what the generated code looks like for representative workflows,
/// so a reviewer sees what a change to codegen does. Update with `cargo insta review` (or
/// `INSTA_UPDATE=always`) after checking the diff.
#[cfg(test)]
mod tests {
    use quote::quote;

    fn expand(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> String {
        pretty(super::workflow(args, item))
    }

    fn pretty(tokens: proc_macro2::TokenStream) -> String {
        let file: syn::File = syn::parse2(tokens).expect("the expansion parses as a file");
        prettyplease::unparse(&file)
    }

    /// A job: a task, then a `poll_until!` (a snapshot and the legacy test use it).
    fn run_job() -> proc_macro2::TokenStream {
        quote! {
            async fn run_job(svc: &JobService, req: JobRequest) -> Result<JobReport, JobError> {
                let job: JobId = svc.start(&req).await?;
                let status: Polled<JobStatus> = poll_until!(
                    svc.status(&job),
                    |s| s.is_finished(),
                    every = 10.secs(),
                    timeout = 5.mins(),
                    max_errors = 3,
                )?;
                Ok(JobReport::new(job, status))
            }
        }
    }

    #[test]
    fn nested_polling_workflow() {
        insta::assert_snapshot!(expand(
            quote!(name = "NestingPatternAnotherStateMachine"),
            run_job()
        ));
    }

    fn expand_with_legacy(
        args: proc_macro2::TokenStream,
        item: proc_macro2::TokenStream,
    ) -> String {
        pretty(super::run(args, item, true).unwrap_or_else(|r| panic!("{}", r.error)))
    }

    fn fingerprint_of(expanded: &str) -> &str {
        let at = expanded.find("FINGERPRINT: u64 = ").expect("a fingerprint") + 19;
        &expanded[at..at + expanded[at..].find(';').expect("a `;`")]
    }

    /// With `legacy-fingerprints`, the fingerprints earlier builds gave this definition
    /// (their values in the snapshots then): the one over rustc's printed tokens (this
    /// snapshot's `FINGERPRINT` until it was written by the macro), and the one before
    /// issue 22, whose states were written by serde's derive. Without it, none.
    #[test]
    fn legacy_fingerprints_are_those_earlier_builds_computed() {
        let item = run_job();
        let args = quote!(name = "NestingPatternAnotherStateMachine");
        let expanded = expand_with_legacy(args.clone(), item.clone());
        let tight: String = expanded.split_whitespace().collect();
        let printed = tight
            .find("fingerprint:10839511426782528169u64,derived:__WfNone,")
            .unwrap_or_else(|| panic!("the printed fingerprint:\n{expanded}"));
        let derived = tight
            .find("fingerprint:9413581730064452692u64,derived:__WfSome(")
            .unwrap_or_else(|| panic!("the derived fingerprint:\n{expanded}"));
        assert!(printed < derived, "the order the runtime tries them in");
        assert!(
            expanded.contains(r#"("AfterSvcStart", &["job"])"#),
            "{expanded}"
        );
        let current = fingerprint_of(&expanded);
        assert!(!["10839511426782528169u64", "9413581730064452692u64"].contains(&current));

        let without = expand(args, item);
        assert!(
            !without.contains("LEGACY"),
            "the trait's default, none:\n{without}"
        );
        assert_eq!(
            fingerprint_of(&without),
            current,
            "the feature adds, never changes"
        );
    }

    /// The fingerprint computed here, outside the compiler (where proc-macro2 prints
    /// tokens its own way), is the one rustc's expansion computes: the integration test
    /// `tests/durable.rs` (`the_fingerprint_does_not_depend_on_the_compiler`) checks the
    /// same value for the same definition.
    #[test]
    fn the_fingerprint_is_the_same_in_and_out_of_rustc() {
        let expanded = expand(
            quote!(name = "Versioned"),
            quote! {
                pub async fn versioned(n: u64) -> u64 {
                    sleep!(n.millis());
                    n + 1
                }
            },
        );
        assert_eq!(fingerprint_of(&expanded), "17220131047152888656u64");
    }

    /// The fingerprint is the definition's: not the spacing of its tokens (what rustc
    /// printed for them changed between releases), nor its policies' values; any type or
    /// name of a state, or the graph, changes it.
    #[test]
    fn the_fingerprint_is_the_definition_s_not_how_it_is_written() {
        let of = |args: &str, item: &str| {
            let expanded = expand(args.parse().unwrap(), item.parse().unwrap());
            fingerprint_of(&expanded).to_owned()
        };
        let base = of(
            "",
            "async fn f(svc: &Svc, n: Vec<Vec<u8>>) -> u32 { let m: Vec<Vec<u8>> = svc.a(&n).await; svc.b(m).await }",
        );
        let spaced = of(
            "",
            "async  fn f ( svc : & Svc , n : Vec < Vec < u8 > > ) -> u32 {\n let m : Vec<Vec<u8> > = svc . a ( & n ) . await ;\n svc.b(m).await\n }",
        );
        assert_eq!(base, spaced);
        // A retry adds the states a call waits in between attempts; its values do not.
        let retried = "async fn f(svc: &Svc, n: Vec<Vec<u8>>) -> u32 { #[timeout(2.secs())] let m: Vec<Vec<u8>> = svc.a(&n).await; svc.b(m).await }";
        assert_eq!(
            of("retry(interval = 3.secs(), max_attempts = 2)", retried),
            of(
                "retry(interval = 5.secs(), max_attempts = 9), timeout = 1.hours()",
                &retried.replace("2.secs", "7.secs")
            ),
        );
        for other in [
            "async fn f(svc: &Svc, n: Vec<Vec<u16>>) -> u32 { let m: Vec<Vec<u8>> = svc.a(&n).await; svc.b(m).await }",
            "async fn f(svc: &Svc, n: Vec<Vec<u8>>) -> u32 { let k: Vec<Vec<u8>> = svc.a(&n).await; svc.b(k).await }",
            "async fn f(svc: &Svc, n: Vec<Vec<u8>>) -> u32 { let m: Vec<Vec<u8>> = svc.a(&n).await; sleep!(1.secs()); svc.b(m).await }",
            "async fn g(svc: &Svc, n: Vec<Vec<u8>>) -> u32 { let m: Vec<Vec<u8>> = svc.a(&n).await; svc.b(m).await }",
        ] {
            assert_ne!(of("", other), base, "{other}");
        }
    }

    #[test]
    fn retry_policy_and_timeout() {
        insta::assert_snapshot!(expand(
            quote!(retry(
                on = ["Unavailable"],
                interval = 2.secs(),
                max_attempts = 4
            )),
            quote! {
                async fn run_job(svc: &JobService, req: JobRequest) -> Result<JobReport, JobError> {
                    #[timeout(30.secs())]
                    let job: JobId = svc.start(&req).await?;
                    #[retry(none)]
                    let report: JobReport = svc.report(&job).await?;
                    Ok(report)
                }
            }
        ));
    }

    #[test]
    fn main_workflow_with_children() {
        insta::assert_snapshot!(expand(
            quote!(name = "NestingPatternMainStateMachine"),
            quote! {
                pub async fn main_flow(first: JobRequest, rest: Vec<JobRequest>) -> Result<Summary, MainError> {
                    let a: JobReport = call_nested!(run_job(first))?;
                    let many: Vec<JobReport> =
                        call_nested!(for r in rest => run_job(r), max_concurrency = 100)?;
                    let pair: (JobReport, u32) = call_nested!(parallel(run_job(a.next()), count(1)))?;
                    Ok(Summary::of(a, many, pair))
                }
            }
        ));
    }

    #[test]
    fn plain_workflow_with_sleep_and_tail_task() {
        insta::assert_snapshot!(expand(
            quote!(crate = "my_facade"),
            quote! {
                async fn greet(clock: &Clock, mut name: String) -> String {
                    name.push('!');
                    sleep!(1.secs());
                    clock.format(&name).await
                }
            }
        ));
    }

    #[test]
    fn loop_with_branches_and_break_value() {
        insta::assert_snapshot!(expand(
            quote!(),
            quote! {
                async fn counting(calc: &Calc, limit: u32) -> u32 {
                    let mut i: u32 = 0;
                    let last: u32 = loop {
                        i += 1;
                        if i % 3 == 0 {
                            continue;
                        }
                        let d: u32 = calc.double(i).await;
                        if d >= limit {
                            break d;
                        }
                        sleep!(1.secs());
                    };
                    last
                }
            }
        ));
    }

    #[test]
    fn callback_with_a_heartbeat() {
        insta::assert_snapshot!(expand(
            quote!(),
            quote! {
                async fn approval(notifier: &Notifier, order: Order) -> Result<Receipt, OrderError> {
                    let decision: Decision = wait_for_callback!(
                        |token| notifier.request_approval(&order, token),
                        timeout = order.approval_timeout(),
                        heartbeat = 1.hours(),
                    )?;
                    Ok(Receipt::new(order, decision))
                }
            }
        ));
    }

    #[test]
    fn errors_keep_a_stub_definition() {
        insta::assert_snapshot!(expand(
            quote!(),
            quote! {
                async fn broken(n: u32) -> u32 {
                    let m = n + 1;
                    sleep!(1.secs());
                    m
                }
            }
        ));
    }
}
