// mimalloc, because ingest allocates each parsed document on a parser thread and frees it on
// the writer thread; the system allocator made those cross-thread frees 5% of ingest time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stacdb::cli::main()
}
