use workflow::prelude::*;

// The items' type does not show in the code: rustc cannot infer it where the loop
// resumes. Bind them to a typed local first: `let ids: Vec<u32> = vec![1, 2, 3];`.
#[workflow]
async fn totals() -> u32 {
    let mut total: u32 = 0;
    for id in vec![1, 2, 3] { //~ ERROR
        sleep!(1.secs());
        total += id;
    }
    total
}

fn main() {}
