//! Packs a root filesystem directory as a one-layer image in an OCI layout.
//! Used by the tests and benchmarks to turn an mmdebstrap tree into an image.
//!
//! usage: pack_rootfs ROOTFS LAYOUT TAG [CREATED_BY]

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: pack_rootfs ROOTFS LAYOUT TAG [CREATED_BY]");
        std::process::exit(2);
    }
    let created_by = args.get(4).map(String::as_str).unwrap_or("mmdebstrap");
    let run = || -> freshen_image::Result<freshen_image::Digest> {
        let layout = std::path::Path::new(&args[2]);
        let layer = freshen_image::write_layer_from_dir(std::path::Path::new(&args[1]), layout, None, created_by)?;
        let platform = freshen_image::Platform::host();
        freshen_image::write_oci_layout(
            layout,
            &freshen_image::LayoutImage { tag: &args[3], os: "linux", architecture: &platform.architecture, layers: &[layer] },
        )
    };
    match run() {
        Ok(d) => println!("{d}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
