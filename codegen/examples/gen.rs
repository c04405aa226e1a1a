//! Prints the code generated for a schemas directory: `cargo run -p eventhub-codegen --example gen -- schemas`.
fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "schemas".into());
    match eventhub_codegen::Config::new().generate(dir.as_ref()) {
        Ok(code) => print!("{code}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
