use workflow::prelude::*;

pub struct Handle(u32);

struct Svc;
impl Svc {
    async fn open(&self) -> Handle {
        Handle(1)
    }
}

// A task's result is checkpointed: it must be serializable even if not used later.
#[workflow]
async fn opens(svc: &Svc) -> u32 {
    let h: Handle = svc.open().await; //~ ERROR
    h.0
}

fn main() {}
