use workflow::prelude::*;

struct Desk;
impl Desk {
    async fn ask(&self) -> Result<(), String> {
        Ok(())
    }
}

#[workflow]
async fn no_parameter(desk: &Desk) -> Result<bool, CallbackError> {
    let approved: bool = wait_for_callback!(|| desk.ask(), timeout = 1.hours())?; //~ ERROR
    Ok(approved)
}

#[workflow]
async fn not_a_closure(desk: &Desk) -> Result<bool, CallbackError> {
    let approved: bool = wait_for_callback!(desk.ask(), timeout = 1.hours())?; //~ ERROR
    Ok(approved)
}

fn main() {}
