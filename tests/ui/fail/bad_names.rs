use workflow::prelude::*;

#[workflow(name = "")] //~ ERROR
async fn empty() {}

#[workflow(name = "AVeryLongWorkflowNameThatGoesOnAndOnPastTheEightyCharacterLimitOfAwsStepFunctions")] //~ ERROR
async fn too_long() {}

#[workflow(name = "orders.v2")] //~ ERROR
async fn dotted() {}

#[workflow(name = PriceBasket)] //~ ERROR
async fn not_a_string() {}

fn main() {}
