use workflow::prelude::*;

struct Desk;
impl Desk {
    async fn ask(&self, _token: CallbackToken) -> Result<(), String> {
        Ok(())
    }
}

#[workflow]
async fn approval(desk: &Desk) -> Result<bool, CallbackError> {
    let approved: bool = wait_for_callback!(|token| desk.ask(token), heartbeat = 1.hours())?; //~ ERROR
    Ok(approved)
}

fn main() {}
