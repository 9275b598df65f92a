//! An execution's typed part, behind a vtable: its state between steps and the few
//! operations that need the workflow's types (step, encode, decode).
//!
//! Everything else a driver does (the step loop, waits, checkpoints, batches of
//! children, callbacks, the end) is the same code for every workflow. Kept generic, it
//! was compiled once per registered workflow, which made most of a crate's build time
//! (issue 22); behind [`Machine`] it is compiled once. What it costs is the boxed future
//! of [`Machine::step`], one allocation a step, which holds the generated step's future
//! (`Workflow::step` returns it unboxed).

use std::marker::PhantomData;

use crate::context::StepCx;
use crate::deps::Deps;
use crate::graph::StateGraph;
use crate::time::{Clock, Timestamp};
use crate::transition::{transition, Transition};
use crate::workflow::{BoxFuture, Step, Workflow};

/// One execution's state machine, its state held apart from its type.
pub(crate) trait Machine: Send {
    /// The workflow's published name.
    fn name(&self) -> &'static str;

    /// The workflow's state graph.
    fn graph(&self) -> &'static StateGraph;

    /// The node the held state resumes at, and whether it waits in it (`None` at the
    /// start of the body, or when no state is held).
    fn node(&self) -> Option<(usize, bool)>;

    /// Runs the held state's step and decides what follows, at the time the step ended
    /// (returned with it). The next state, if any, is held for the next step; the
    /// transition carries `()` in its place. Dropping the future (a cancellation, a
    /// timeout) drops the state with it, as dropping a typed step does.
    fn step<'a>(
        &'a mut self,
        deps: &'a Deps,
        cx: &'a mut StepCx,
        clock: Clock,
        batches: &'a mut u64,
    ) -> BoxFuture<'a, (Transition<()>, Timestamp)>;

    /// Writes the held state, as checkpoints store it, into `buffer` (cleared first).
    fn encode(&self, buffer: &mut Vec<u8>) -> Result<(), String>;

    /// Holds the state `bytes` encode (a checkpoint read back).
    fn decode(&mut self, bytes: &[u8]) -> Result<(), String>;
}

/// The [`Machine`] of workflow `W`.
pub(crate) struct Held<W: Workflow> {
    state: Option<W::State>,
    workflow: PhantomData<fn() -> W>,
}

impl<W: Workflow> Held<W> {
    pub(crate) fn boxed(state: W::State) -> Box<dyn Machine> {
        Box::new(Held::<W> {
            state: Some(state),
            workflow: PhantomData,
        })
    }
}

impl<W: Workflow> Machine for Held<W> {
    fn name(&self) -> &'static str {
        W::NAME
    }

    fn graph(&self) -> &'static StateGraph {
        W::graph()
    }

    fn node(&self) -> Option<(usize, bool)> {
        self.state.as_ref().and_then(|s| W::resumes_at(s).node())
    }

    fn step<'a>(
        &'a mut self,
        deps: &'a Deps,
        cx: &'a mut StepCx,
        clock: Clock,
        batches: &'a mut u64,
    ) -> BoxFuture<'a, (Transition<()>, Timestamp)> {
        // The driver steps only after a transition that held a state, or a decode.
        let state = self
            .state
            .take()
            .expect("a driver steps a machine that holds a state");
        Box::pin(async move {
            let step = Step::from_result(W::step(state, deps, cx).await);
            let now = clock.now();
            let next = transition::<W>(step, now, batches).map_state(|s| self.state = Some(s));
            (next, now)
        })
    }

    fn encode(&self, buffer: &mut Vec<u8>) -> Result<(), String> {
        buffer.clear();
        let state = self.state.as_ref().ok_or("no state to encode")?;
        serde_json::to_writer(&mut *buffer, &crate::persist::Saved(state))
            .map_err(|e| format!("state of workflow `{}` does not serialize: {e}", W::NAME))
    }

    fn decode(&mut self, bytes: &[u8]) -> Result<(), String> {
        let state = crate::persist::from_slice(bytes)
            .map_err(|e| format!("the checkpointed state does not decode: {e}"))?;
        self.state = Some(state);
        Ok(())
    }
}
