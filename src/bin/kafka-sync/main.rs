//! `kafka-sync`: the operator CLI (being written).

fn main() {
    eprintln!("kafka-sync: not yet");
    std::process::exit(2);
}
