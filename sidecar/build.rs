//! Rebuilds the sidecar when a migration is added or changed: `sqlx::migrate!` embeds sidecar/migrations/ at
//! compile time, and cargo does not otherwise know that those files are inputs of the build.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
