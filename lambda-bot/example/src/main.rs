//! The example bot (issue 7).

fn main() {
    eprintln!("the example bot is built in issue 7");
    std::process::exit(1);
}
