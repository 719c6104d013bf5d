//! A local RTSP server for the camera tests (gst-rtsp-server): serves an
//! H.264 MP4, an H.265 one (`.h265.mp4`), or a Motion JPEG one (`.mov`), at
//! `rtsp://127.0.0.1:PORT/clip`, paced in real time, as an IP camera would.
//! Prints `ready` once it listens; runs until killed.
//!
//! Usage: `rtsp_server PORT CLIP.mp4|CLIP.h265.mp4|CLIP.mov`

use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, clip] = args.as_slice() else {
        return Err("usage: rtsp_server PORT CLIP.mp4|CLIP.h265.mp4|CLIP.mov".into());
    };
    gstreamer::init()?;
    let main_loop = gstreamer::glib::MainLoop::new(None, false);
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(port);
    let mounts = server.mount_points().ok_or("server has no mount points")?;
    let factory = rtsp::RTSPMediaFactory::new();
    // No re-encoding: the test clip is coded already, so the server costs
    // next to nothing beside the daemon under test.
    let payload = if clip.ends_with(".mov") {
        "jpegparse ! rtpjpegpay name=pay0 pt=26"
    } else if clip.ends_with(".h265.mp4") {
        "h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96"
    } else {
        "h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96"
    };
    factory.set_launch(&format!(
        "( filesrc location=\"{clip}\" ! qtdemux ! {payload} )"
    ));
    mounts.add_factory("/clip", factory);
    let _source = server.attach(None)?;
    println!("ready");
    main_loop.run();
    Ok(())
}
