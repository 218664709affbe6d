// The Docker Engine API's image shapes (API 1.44): ImageInspect, ImageSummary and
// HistoryResponseItem, mapped from berth's records. Docker spelling lives here only.
import type { Digest } from '../core/digest.ts';
import type { ContainerConfig, ImageConfig } from '../core/oci.ts';
import { familiar, type StoredImage } from './image-store.ts';

/** A Docker container.Config with every field present, as dockerd 25 serialises it. */
export function dockerContainerConfig(c: ContainerConfig | undefined): Record<string, unknown> {
  const cfg = c ?? {};
  const out: Record<string, unknown> = {
    Hostname: '',
    Domainname: '',
    User: cfg.User ?? '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ExposedPorts: cfg.ExposedPorts,
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: cfg.Env ?? null,
    Cmd: cfg.Cmd ?? null,
    Healthcheck: cfg.Healthcheck,
    ArgsEscaped: cfg.ArgsEscaped,
    Image: '',
    Volumes: cfg.Volumes ?? null,
    WorkingDir: cfg.WorkingDir ?? '',
    Entrypoint: cfg.Entrypoint ?? null,
    OnBuild: cfg.OnBuild ?? null,
    Labels: cfg.Labels ?? null,
    StopSignal: cfg.StopSignal,
    Shell: cfg.Shell,
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

export interface InspectExtras {
  /** GraphDriver.Data (LowerDir, UpperDir, ...) from the snapshotter's layout. */
  graphDriverData: Record<string, string>;
}

export function toInspect(img: StoredImage, config: ImageConfig, extras: InspectExtras): Record<string, unknown> {
  const out: Record<string, unknown> = {
    Id: img.id,
    RepoTags: img.repoTags.map(familiar),
    RepoDigests: img.repoDigests.map(familiar),
    Parent: img.parent ?? '',
    Comment: lastComment(config),
    Created: config.created ?? img.added,
    DockerVersion: '',
    Author: config.author ?? '',
    Config: dockerContainerConfig(config.config),
    Architecture: config.architecture,
    Os: config.os,
    Size: img.size,
    GraphDriver: { Data: extras.graphDriverData, Name: 'overlay' },
    RootFS: { Type: 'layers', Layers: [...(config.rootfs?.diff_ids ?? [])] },
    Metadata: { LastTagTime: img.lastTagTime ?? '0001-01-01T00:00:00Z' },
  };
  if (config.variant) out.Variant = config.variant;
  return out;
}

/** Docker takes the image's Comment from the last history entry. */
function lastComment(config: ImageConfig): string {
  const h = config.history ?? [];
  return h.length ? (h[h.length - 1]!.comment ?? '') : '';
}

function unixSeconds(iso: string | undefined): number {
  if (!iso) return 0;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}

export function toSummary(img: StoredImage, config: ImageConfig | undefined, opts: { useNone: boolean }): Record<string, unknown> {
  let repoTags = img.repoTags.map(familiar);
  let repoDigests = img.repoDigests.map(familiar);
  if (opts.useNone && repoTags.length === 0 && repoDigests.length === 0) {
    repoTags = ['<none>:<none>'];
    repoDigests = ['<none>@<none>'];
  }
  return {
    Containers: -1,
    Created: unixSeconds(config?.created ?? img.added),
    Id: img.id,
    Labels: config?.config?.Labels ?? null,
    ParentId: img.parent ?? '',
    RepoDigests: repoDigests,
    RepoTags: repoTags,
    SharedSize: -1,
    Size: img.size,
  };
}

/**
 * Docker's image history: the config's history, newest first, each non-empty entry matched to the
 * next layer. The newest entry carries the image ID and tags, older ones "<missing>" (their
 * intermediate images do not exist here).
 */
export function toHistory(img: StoredImage, config: ImageConfig, layerSizes: number[]): Array<Record<string, unknown>> {
  const diffIds = config.rootfs?.diff_ids ?? [];
  let layer = 0;
  const rows: Array<Record<string, unknown>> = [];
  for (const h of config.history ?? []) {
    let size = 0;
    if (!h.empty_layer) {
      size = layerSizes[layer] ?? 0;
      layer++;
    }
    rows.push({ Comment: h.comment ?? '', Created: unixSeconds(h.created), CreatedBy: h.created_by ?? '', Id: '<missing>', Size: size, Tags: null });
  }
  // Layers without history entries (hand-made images) still show up, one row each.
  for (; layer < diffIds.length; layer++) {
    rows.push({ Comment: '', Created: unixSeconds(config.created), CreatedBy: '', Id: '<missing>', Size: layerSizes[layer] ?? 0, Tags: null });
  }
  rows.reverse();
  if (rows.length) {
    rows[0]!.Id = img.id;
    rows[0]!.Tags = img.repoTags.length ? img.repoTags.map(familiar) : null;
  }
  return rows;
}

export type { Digest };
