//! The switchboard load tool. Its modes arrive with the load-tool issue; this
//! binary exists so the workspace layout is final from the start.

fn main() {
    eprintln!("load: no modes yet; see the README");
    std::process::exit(2);
}
