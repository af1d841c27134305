// image-layout writes an OCI image layout (and optionally one tar of it) from a root filesystem
// directory, without a container engine: one gzip layer built from the directory with fixed
// ownership and modification times, an OCI image config (user, entrypoint, labels...) and an OCI
// manifest, assembled with go-containerregistry (the library ko and crane are built on). Used by
// scripts/build-image; built by tests/tools/install-image-layout.
//
// The same directory, flags and Go version give the same digests: every time in the layer, the
// config and the archive is -created, files are written in name order, and ownership is 0:0
// unless an -owner flag says otherwise.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

type owner struct{ uid, gid int }

func main() {
	var (
		rootfs     = flag.String("rootfs", "", "directory whose content is the image's only layer")
		out        = flag.String("out", "", "OCI image layout directory to write (must not exist)")
		archive    = flag.String("archive", "", "also write the layout as one tar file (with a docker-load manifest.json)")
		name       = flag.String("name", "", "image name with tag, e.g. ghcr.io/org/app:1.0.0 (annotations, archive RepoTags)")
		created    = flag.Int64("created", 0, "creation time, seconds since the epoch (SOURCE_DATE_EPOCH)")
		user       = flag.String("user", "", "config User, e.g. 65532:65532")
		workdir    = flag.String("workdir", "/", "config WorkingDir")
		entrypoint = flag.String("entrypoint", "[]", "config Entrypoint as a JSON array")
		cmd        = flag.String("cmd", "[]", "config Cmd as a JSON array")
		osName     = flag.String("os", "linux", "platform OS")
		arch       = flag.String("arch", "amd64", "platform architecture")
		history    = flag.String("history", "", "created_by of the layer's history entry")
		labels     multi
		envs       multi
		owners     multi
	)
	flag.Var(&labels, "label", "KEY=VALUE config label, also a manifest annotation (repeatable)")
	flag.Var(&envs, "env", "KEY=VALUE config environment variable (repeatable)")
	flag.Var(&owners, "owner", "PATH=UID:GID ownership of one path in the layer, default 0:0 (repeatable)")
	flag.Parse()
	if *rootfs == "" || *out == "" || *name == "" {
		fail(fmt.Errorf("-rootfs, -out and -name are required"))
	}
	when := time.Unix(*created, 0).UTC()
	ownership := map[string]owner{}
	for _, o := range owners {
		path, ids, ok := strings.Cut(o, "=")
		uid, gid, ok2 := strings.Cut(ids, ":")
		u, err1 := strconv.Atoi(uid)
		g, err2 := strconv.Atoi(gid)
		if !ok || !ok2 || err1 != nil || err2 != nil {
			fail(fmt.Errorf("-owner %q: want PATH=UID:GID", o))
		}
		ownership[strings.Trim(path, "/")] = owner{u, g}
	}
	labelMap := keyValues("label", labels)

	layerTar, err := layerFromDir(*rootfs, when, ownership)
	fail(err)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	fail(err)

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: when}, CreatedBy: *history, Comment: "scripts/build-image"},
	})
	fail(err)
	cfg, err := img.ConfigFile()
	fail(err)
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: when}
	cfg.OS, cfg.Architecture = *osName, *arch
	cfg.Config.User = *user
	cfg.Config.WorkingDir = *workdir
	cfg.Config.Entrypoint = jsonArray("entrypoint", *entrypoint)
	cfg.Config.Cmd = jsonArray("cmd", *cmd)
	cfg.Config.Env = envs
	cfg.Config.Labels = labelMap
	img, err = mutate.ConfigFile(img, cfg)
	fail(err)
	// The labels are manifest annotations too (registries show those), and the layout's index
	// names the image the way `docker save` (OCI) and containerd do.
	img = mutate.Annotations(img, labelMap).(v1.Image)

	repository, tag := splitName(*name)
	if _, err := os.Stat(*out); err == nil {
		fail(fmt.Errorf("%s exists", *out))
	}
	path, err := layout.Write(*out, empty.Index)
	fail(err)
	fail(path.AppendImage(img,
		layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": tag,
			"io.containerd.image.name":          repository + ":" + tag,
		}),
		layout.WithPlatform(v1.Platform{OS: *osName, Architecture: *arch})))

	digest, err := img.Digest()
	fail(err)
	if *archive != "" {
		configName, err := img.ConfigName()
		fail(err)
		layerDigest, err := layer.Digest()
		fail(err)
		fail(writeArchive(*out, *archive, when, repository+":"+tag, configName, layerDigest))
	}
	fmt.Println(digest.String())
}

// layerFromDir is an uncompressed tar of dir: entries in name order, directories before their
// content, no leading "./", every time set to when, owner 0:0 unless listed.
func layerFromDir(dir string, when time.Time, ownership map[string]owner) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := entry.Info()
		if err != nil {
			return err
		}
		o := ownership[rel]
		header := &tar.Header{
			Name:    rel,
			Mode:    int64(info.Mode().Perm()),
			Uid:     o.uid,
			Gid:     o.gid,
			ModTime: when,
			Format:  tar.FormatPAX,
		}
		if info.Mode()&fs.ModeSticky != 0 {
			header.Mode |= 01000
		}
		switch {
		case info.IsDir():
			header.Typeflag, header.Name = tar.TypeDir, rel+"/"
		case info.Mode().IsRegular():
			header.Typeflag, header.Size = tar.TypeReg, info.Size()
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			header.Typeflag, header.Linkname = tar.TypeSymlink, target
		default:
			return fmt.Errorf("%s: only directories, regular files and symlinks go into the layer", path)
		}
		if err := tw.WriteHeader(header); err != nil {
			return err
		}
		if header.Typeflag == tar.TypeReg {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeArchive tars the layout directory (name order, fixed times) and adds the manifest.json
// `docker load` reads, as `docker save` does since Docker 25.
func writeArchive(dir, file string, when time.Time, ref string, config, layer v1.Hash) error {
	manifest, err := json.Marshal([]map[string]any{{
		"Config":   "blobs/sha256/" + config.Hex,
		"RepoTags": []string{ref},
		"Layers":   []string{"blobs/sha256/" + layer.Hex},
	}})
	if err != nil {
		return err
	}
	var names []string
	err = filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if err == nil && path != dir {
			names = append(names, path)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, mode int64, content []byte, isDir bool) error {
		h := &tar.Header{Name: name, Mode: mode, ModTime: when, Typeflag: tar.TypeReg, Size: int64(len(content)), Format: tar.FormatPAX}
		if isDir {
			h.Typeflag, h.Name, h.Size = tar.TypeDir, name+"/", 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(content)
		return err
	}
	for _, path := range names {
		rel, _ := filepath.Rel(dir, path)
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if info.IsDir() {
			err = add(filepath.ToSlash(rel), 0o755, nil, true)
		} else {
			var content []byte
			if content, err = os.ReadFile(path); err == nil {
				err = add(filepath.ToSlash(rel), 0o644, content, false)
			}
		}
		if err != nil {
			return err
		}
	}
	if err := add("manifest.json", 0o644, manifest, false); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

func keyValues(flagName string, values []string) map[string]string {
	m := map[string]string{}
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			fail(fmt.Errorf("-%s %q: want KEY=VALUE", flagName, kv))
		}
		m[k] = v
	}
	return m
}

func jsonArray(flagName, text string) []string {
	var a []string
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		fail(fmt.Errorf("-%s: %w", flagName, err))
	}
	return a
}

// splitName splits "host/path/name:tag" at the tag's colon (not a registry port's).
func splitName(name string) (string, string) {
	slash := strings.LastIndex(name, "/")
	colon := strings.LastIndex(name, ":")
	if colon <= slash {
		fail(fmt.Errorf("-name %q has no tag", name))
	}
	return name[:colon], name[colon+1:]
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "image-layout:", err)
		os.Exit(1)
	}
}
