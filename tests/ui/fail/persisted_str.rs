use workflow::prelude::*;

#[workflow]
async fn greets(formal: bool) -> String {
    let greeting: &str = if formal { "Good day" } else { "Hi" }; //~ ERROR
    sleep!(1.secs());
    greeting.to_owned()
}

fn main() {}
