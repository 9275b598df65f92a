use workflow::prelude::*;

struct Connection;

impl Connection {
    fn open() -> Self {
        Connection
    }
    fn id(&self) -> u32 {
        7
    }
}

#[workflow]
async fn keeps_a_connection() -> u32 {
    let conn: Connection = Connection::open(); //~ ERROR
    sleep!(1.secs());
    conn.id()
}

fn main() {}
