// Where the container part keeps things. Nothing else joins paths into these roots.
//
//   <dataRoot>/containers/<id>/
//     config.v2.json        the record (create body, state, restart count): atomic writes
//     hostname hosts resolv.conf   bind-mounted over /etc in the container (when no network
//                                  service writes them)
//     ctr.log ctr.log.1 ...  conmon's k8s-file log and its rotations (newest unnumbered)
//   <execRoot>/containers/<id>/         the OCI bundle (tmpfs in production)
//     config.json  pid  conmon.pid  conmon.log  ctl  winsz  attach  rootfs/ (overlay mount point)
//   <execRoot>/exits/<id>               exit code written by conmon
//   <execRoot>/exec/<execId>/           exec sessions (process.json, conmon files)
//   <execRoot>/runtimes/<name>/         the OCI runtime's --root
//   <execRoot>/sock/                    conmon's socket dir (symlinks to bundles)
import { join } from 'node:path';

export class ContainerPaths {
  readonly dataRoot: string;
  readonly execRoot: string;

  constructor(dataRoot: string, execRoot: string) {
    this.dataRoot = dataRoot;
    this.execRoot = execRoot;
  }

  get containersDir(): string { return join(this.dataRoot, 'containers'); }
  dir(id: string): string { return join(this.containersDir, id); }
  record(id: string): string { return join(this.dir(id), 'config.v2.json'); }
  log(id: string): string { return join(this.dir(id), 'ctr.log'); }
  etcFile(id: string, name: 'hostname' | 'hosts' | 'resolv.conf'): string { return join(this.dir(id), name); }

  get bundlesDir(): string { return join(this.execRoot, 'containers'); }
  bundle(id: string): string { return join(this.bundlesDir, id); }
  rootfs(id: string): string { return join(this.bundle(id), 'rootfs'); }
  get exitDir(): string { return join(this.execRoot, 'exits'); }
  get execDir(): string { return join(this.execRoot, 'exec'); }
  exec(execId: string): string { return join(this.execDir, execId); }
  runtimeRoot(name: string): string { return join(this.execRoot, 'runtimes', name); }
  get socketDir(): string { return join(this.execRoot, 'sock'); }
}
