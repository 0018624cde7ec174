//! The running etcd + kube-apiserver pair and the optional controller manager: start-up with
//! retries on new ports, clients, and teardown.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use kube::config::KubeConfigOptions;
use tempfile::TempDir;

use crate::env::{record_skip, skip_requested, Binaries};
use crate::pki::{admin_kubeconfig, write_pki};
use crate::process::{free_port, kill, log_tail, port_taken, spawn, wait_ready, StartGuard};
use crate::{
    io_err, Error, Options, Result, KUBE_CONTROLLER_MANAGER_BIN, SKIP_ENV, START_TIMEOUT_ENV,
};

/// How many times [`ApiServer::start`] tries ports before giving up.
const START_ATTEMPTS: usize = 3;

/// A running etcd + kube-apiserver pair. Dropping it stops both and deletes their files.
pub struct ApiServer {
    apiserver: Option<Child>,
    etcd: Option<Child>,
    client: kube::Client,
    kubeconfig: PathBuf,
    url: String,
    apiserver_bin: PathBuf,
    // Declared last: dropped after the processes are killed in `Drop::drop`.
    dir: TempDir,
}

/// A running `kube-controller-manager` (see [`ApiServer::start_controller_manager`]); dropping
/// it stops the process.
pub struct ControllerManager {
    child: Option<Child>,
}

impl ControllerManager {
    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for ControllerManager {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.url)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// Starts etcd and kube-apiserver with binaries from the environment.
    pub async fn start() -> Result<Self> {
        Self::start_with(Binaries::from_env()?).await
    }

    /// Like [`ApiServer::start`], but returns `Ok(None)` (after printing why) when
    /// `MEDIACHAIN_SKIP_KUBE=1` is set. Without that variable, missing binaries are an error.
    pub async fn start_or_skip() -> Result<Option<Self>> {
        Self::start_with_options_or_skip(Options::default()).await
    }

    /// Like [`ApiServer::start_or_skip`], with `options`.
    pub async fn start_with_options_or_skip(options: Options) -> Result<Option<Self>> {
        if skip_requested() {
            record_skip(&format!(
                "{SKIP_ENV} is set, no real kube-apiserver started"
            ));
            return Ok(None);
        }
        Self::start_with_options(Binaries::from_env()?, options)
            .await
            .map(Some)
    }

    /// Starts etcd and kube-apiserver from the given binaries.
    pub async fn start_with(bins: Binaries) -> Result<Self> {
        Self::start_with_options(bins, Options::default()).await
    }

    /// Starts etcd and kube-apiserver from the given binaries, with `options`.
    pub async fn start_with_options(bins: Binaries, options: Options) -> Result<Self> {
        Self::start_on_ports(bins, options, || {
            Ok([free_port()?, free_port()?, free_port()?])
        })
        .await
    }

    /// Starts on the ports `pick` gives (etcd client, etcd peer, kube-apiserver). They are chosen
    /// before the processes run (Go binaries that report no port they bound themselves), so
    /// another process may take one meanwhile: an attempt that fails because an address was in
    /// use is retried on new ports, [`START_ATTEMPTS`] times in all.
    pub(crate) async fn start_on_ports(
        bins: Binaries,
        options: Options,
        mut pick: impl FnMut() -> Result<[u16; 3]>,
    ) -> Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_once(bins.clone(), &options, pick()?).await {
                Err(Error::Exited {
                    name, ref log_tail, ..
                }) if attempt < START_ATTEMPTS && port_taken(log_tail) => {
                    tracing::warn!(name, attempt, "a port was taken during start-up; new ports");
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn start_once(bins: Binaries, options: &Options, ports: [u16; 3]) -> Result<Self> {
        let (authorization, admission) = if options.node_authorization {
            (
                "Node,RBAC",
                vec!["--enable-admission-plugins=NodeRestriction"],
            )
        } else {
            ("RBAC", Vec::new())
        };
        let timeout = std::env::var(START_TIMEOUT_ENV)
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Duration::from_secs(90), Duration::from_secs);
        let dir = tempfile::Builder::new()
            .prefix("kube-harness-")
            .tempdir()
            .map_err(io_err("creating the harness temp dir"))?;
        let root = dir.path().to_path_buf();
        let pki = write_pki(&root)?;

        let [etcd_client, etcd_peer, api_port] = ports;
        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");

        let etcd = spawn(
            Command::new(&bins.etcd)
                .arg("--name=harness")
                .arg(format!("--data-dir={}", root.join("etcd").display()))
                .arg(format!("--listen-client-urls={etcd_url}"))
                .arg(format!("--advertise-client-urls={etcd_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=harness={peer_url}"))
                .arg("--unsafe-no-fsync")
                .arg("--log-level=warn"),
            &root.join("etcd.log"),
            "etcd",
        )?;
        // From here on, `guard` kills what was started if start-up fails.
        let mut guard = StartGuard {
            etcd: Some(etcd),
            apiserver: None,
        };

        let apiserver = spawn(
            Command::new(&bins.kube_apiserver)
                .arg(format!("--etcd-servers={etcd_url}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg(format!("--secure-port={api_port}"))
                .arg(format!("--cert-dir={}", root.join("cert-dir").display()))
                .arg(format!("--tls-cert-file={}", pki.serving_cert.display()))
                .arg(format!(
                    "--tls-private-key-file={}",
                    pki.serving_key.display()
                ))
                .arg(format!("--client-ca-file={}", pki.ca_cert.display()))
                .arg(format!(
                    "--service-account-key-file={}",
                    pki.sa_pub.display()
                ))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    pki.sa_key.display()
                ))
                .arg("--service-account-issuer=https://kubernetes.default.svc")
                .arg("--service-cluster-ip-range=10.0.0.0/24")
                .arg(format!("--authorization-mode={authorization}"))
                .args(admission)
                .arg("--disable-admission-plugins=ServiceAccount")
                .arg("--allow-privileged=true")
                .arg("--v=0"),
            &root.join("kube-apiserver.log"),
            "kube-apiserver",
        )?;
        guard.apiserver = Some(apiserver);

        let url = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = root.join("kubeconfig");
        let kc = admin_kubeconfig(&url, &pki);
        fs::write(&kubeconfig, serde_yaml::to_string(&kc)?)
            .map_err(io_err("writing the kubeconfig"))?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        let client = kube::Client::try_from(config)?;

        wait_ready(&client, &mut guard, &root, timeout).await?;
        tracing::info!(%url, kubeconfig = %kubeconfig.display(), "kube-apiserver ready");

        let (etcd, apiserver) = (guard.etcd.take(), guard.apiserver.take());
        Ok(Self {
            apiserver,
            etcd,
            client,
            kubeconfig,
            url,
            apiserver_bin: bins.kube_apiserver,
            dir,
        })
    }

    /// Starts a `kube-controller-manager` against this API server running only `controllers`
    /// (e.g. `["statefulset", "garbagecollector"]`), without leader election. Its binary comes
    /// from `KUBE_CONTROLLER_MANAGER_BIN`, else next to the `kube-apiserver` binary. It runs under
    /// the same supervisor as the API server: it dies with the [`ControllerManager`] or with the
    /// test process. Its log is `kube-controller-manager.log` in [`ApiServer::dir`].
    pub fn start_controller_manager(&self, controllers: &[&str]) -> Result<ControllerManager> {
        let bin = match std::env::var_os(KUBE_CONTROLLER_MANAGER_BIN) {
            Some(path) => PathBuf::from(path),
            None => self.apiserver_bin.with_file_name("kube-controller-manager"),
        };
        if !bin.is_file() {
            return Err(Error::MissingBinary {
                var: KUBE_CONTROLLER_MANAGER_BIN,
                problem: format!("is unset and {} is not a file", bin.display()),
            });
        }
        let child = spawn(
            Command::new(&bin)
                .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
                .arg(format!("--controllers={}", controllers.join(",")))
                .arg("--leader-elect=false")
                .arg("--secure-port=0")
                .arg("--use-service-account-credentials=false")
                .arg("--v=1"),
            &self.dir.path().join("kube-controller-manager.log"),
            "kube-controller-manager",
        )?;
        Ok(ControllerManager { child: Some(child) })
    }

    /// A client authenticated as cluster admin (`system:masters`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Path of the admin kubeconfig (valid while `self` lives).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server URL, `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The temporary directory holding certificates, logs and etcd data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of the kube-apiserver log, for test failure messages.
    pub fn apiserver_log_tail(&self) -> String {
        log_tail(&self.dir.path().join("kube-apiserver.log"))
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        kill(&mut self.apiserver);
        kill(&mut self.etcd);
    }
}
