//! The pipeline, and what is emitted when it fails.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;

use crate::codegen::Codegen;
use crate::errors::Errors;
use crate::parse::{self, Args, Ret, WorkflowFn};
use crate::policy;
use crate::{analyze, lower};

/// The attribute: the expansion, or on error the errors plus a stand-in definition.
pub(crate) fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    match run(args, item.clone()) {
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
    run(args, item).map_err(|r| r.error)
}

struct Rejected {
    error: syn::Error,
    /// A definition of the workflow that keeps the rest of the crate compiling.
    stub: Option<TokenStream>,
}

fn run(args: TokenStream, item: TokenStream) -> Result<TokenStream, Rejected> {
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
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        #vis struct #ident;

        impl #wf::Workflow for #ident {
            const NAME: &'static str = #name;
            const FINGERPRINT: u64 = 0;
            type Input = #input;
            type Output = #ok;
            type Error = #err;
            type State = ();
            fn graph() -> &'static #wf::StateGraph { ::core::unreachable!() }
            fn link<__WfLinker: #wf::codegen::Linker>(_: &mut __WfLinker) {}
            fn start(_: Self::Input) -> Self::State {}
            fn step<'__wf>(
                _: Self::State,
                _: &'__wf #wf::Deps,
                _: &'__wf mut #wf::codegen::StepCx,
            ) -> impl ::core::future::Future<Output = #wf::codegen::Step<Self>>
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
        let tokens = super::workflow(args, item);
        let file: syn::File = syn::parse2(tokens).expect("the expansion parses as a file");
        prettyplease::unparse(&file)
    }

    #[test]
    fn nested_polling_workflow() {
        insta::assert_snapshot!(expand(
            quote!(name = "NestingPatternAnotherStateMachine"),
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
        ));
    }

    /// The fingerprint `#[workflow]` gave this definition before issue 22 (its value in
    /// the snapshot then), which the runtime accepts to read the states it stored. The
    /// snapshots show the legacy fingerprint of every other workflow; each equals its
    /// `FINGERPRINT` before issue 22 too.
    #[test]
    fn legacy_fingerprint_is_the_one_before_issue_22() {
        let expanded = expand(
            quote!(name = "NestingPatternAnotherStateMachine"),
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
            },
        );
        assert!(
            expanded.contains("fingerprint: 9413581730064452692u64,"),
            "{expanded}"
        );
        assert!(
            !expanded.contains("FINGERPRINT: u64 = 9413581730064452692u64;"),
            "the encoding changed, so must the fingerprint"
        );
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
