use workflow::prelude::*;

#[workflow]
async fn checksum(data: Vec<u8>) -> u32 {
    let header: &[u8] = &data[..4]; //~ ERROR
    sleep!(1.secs());
    header.iter().map(|b| u32::from(*b)).sum()
}

fn main() {}
