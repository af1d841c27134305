//! `kubectl connectemail`: the kubectl plugin (see `connect_email_operator::plugin`). Install it
//! on the PATH as `kubectl-connectemail` and run `kubectl connectemail --help`.

fn main() {
    std::process::exit(connect_email_operator::plugin::main());
}
