//! The README's first example is `examples/quickstart.rs`, word for word (the matrix runs that
//! example against the real broker), so the README shows code that runs as written.

#[test]
fn the_readmes_first_example_is_the_quickstart_example() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("```rust")
        .expect("the README has a Rust example");
    let body_start = start + readme[start..].find('\n').unwrap() + 1;
    let body_end = body_start + readme[body_start..].find("```").unwrap();
    let quickstart = include_str!("../examples/quickstart.rs");
    assert_eq!(
        &readme[body_start..body_end],
        quickstart,
        "README's first example differs from examples/quickstart.rs"
    );
    assert!(quickstart.contains("Kafka::connect"));
}
