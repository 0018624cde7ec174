//! Prints the operator's CustomResourceDefinitions as YAML (`operator/crdgen.sh` writes them
//! to `crds/`).

use kube::CustomResourceExt;
use mediachain_operator::crd::MediachainPeer;

fn main() -> std::process::ExitCode {
    match serde_yaml::to_string(&MediachainPeer::crd()) {
        Ok(yaml) => {
            print!("---\n{yaml}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crdgen: serialising the CRD: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
