use workflow::prelude::*;

struct Desk;
impl Desk {
    async fn ask(&self, _token: CallbackToken) -> Result<(), String> {
        Ok(())
    }
}

#[workflow]
async fn approval(desk: &Desk) -> Result<bool, CallbackError> {
    let approved = wait_for_callback!(|token| desk.ask(token), timeout = 1.hours())?; //~ ERROR
    Ok(approved)
}

fn main() {}
