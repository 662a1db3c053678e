// Command pulumi-language-python is a minimal Pulumi language host for Python programs.
//
// Why it exists: the Go module proxy this project builds from refuses the upstream host module
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 answers 403 "not available"
// for every version), so tools/build-pulumi.sh builds this one instead, against the same
// sdk/v3 release as the CLI. It does what a dynamic-provider-only program needs (see
// shared/docs/pulumi-offline.md §1.6): serve pulumirpc.LanguageRuntime on 127.0.0.1, report no
// required plugins, and Run the program with pulumi-language-python-exec (which sits next to
// this binary) under the interpreter of the project's virtualenv. Not supported, on purpose:
// `pulumi about` details, InstallDependencies (make setup owns the venv), program generation.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

// bailExitCode is what pulumi-language-python-exec exits with after it has shown the error.
const bailExitCode = 32

// engineCheckInterval is how often the host checks that the engine still answers; the host
// exits once it does not, so no orphan survives a killed `pulumi`.
const engineCheckInterval = 2 * time.Second

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	executor      string
}

func main() {
	// The engine passes its address as the last argument; older engines also passed -flags.
	var positional []string
	for _, a := range os.Args[1:] {
		if !strings.HasPrefix(a, "-") {
			positional = append(positional, a)
		}
	}
	if len(positional) == 0 {
		fmt.Fprintln(os.Stderr, "pulumi-language-python: missing the engine address argument")
		os.Exit(1)
	}
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: cannot locate own executable: %v\n", err)
		os.Exit(1)
	}
	host := &languageHost{
		engineAddress: positional[len(positional)-1],
		executor:      filepath.Join(filepath.Dir(self), "pulumi-language-python-exec"),
	}
	if _, err := os.Stat(host.executor); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: missing executor %s: %v\n", host.executor, err)
		os.Exit(1)
	}

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: listen: %v\n", err)
		os.Exit(1)
	}
	server := grpc.NewServer(grpc.MaxRecvMsgSize(400 * 1024 * 1024))
	pulumirpc.RegisterLanguageRuntimeServer(server, host)
	fmt.Printf("%d\n", listener.Addr().(*net.TCPAddr).Port)
	go host.exitWhenEngineGone(server)
	if err := server.Serve(listener); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: serve: %v\n", err)
		os.Exit(1)
	}
}

func (h *languageHost) exitWhenEngineGone(server *grpc.Server) {
	failures := 0
	for {
		time.Sleep(engineCheckInterval)
		conn, err := net.DialTimeout("tcp", h.engineAddress, time.Second)
		if err != nil {
			failures++
			if failures >= 3 {
				server.Stop()
				return
			}
			continue
		}
		failures = 0
		_ = conn.Close()
	}
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *languageHost) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *languageHost) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

// Run executes the Python program and maps the executor's exit code onto the engine's contract.
func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	root := req.GetPwd()
	entry := req.GetProgram()
	virtualenv := ""
	if info := req.GetInfo(); info != nil {
		if info.GetRootDirectory() != "" {
			root = info.GetRootDirectory()
		}
		if info.GetEntryPoint() != "" && info.GetProgramDirectory() != "" {
			entry = filepath.Join(info.GetProgramDirectory(), info.GetEntryPoint())
		}
		if v, ok := info.GetOptions().AsMap()["virtualenv"].(string); ok {
			virtualenv = v
		}
	}
	if entry == "" {
		entry = "."
	}

	python, env, err := interpreter(root, virtualenv)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	configJSON, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretsJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	env = append(env, "PULUMI_CONFIG="+string(configJSON), "PULUMI_CONFIG_SECRET_KEYS="+string(secretsJSON))

	args := []string{h.executor}
	flag := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flag("monitor", req.GetMonitorAddress())
	flag("engine", h.engineAddress)
	flag("project", req.GetProject())
	flag("root_directory", root)
	flag("stack", req.GetStack())
	flag("pwd", req.GetPwd())
	flag("dry_run", strconv.FormatBool(req.GetDryRun()))
	flag("parallel", strconv.Itoa(int(req.GetParallel())))
	flag("organization", req.GetOrganization())
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = req.GetPwd()
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == bailExitCode:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exitErr):
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("program exited with non-zero exit code: %d", exitErr.ExitCode()),
		}, nil
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("running %s: %v", python, err)}, nil
	}
}

// interpreter picks the project's virtualenv python (resolved against the project root, as the
// upstream host does) or, without one, $PULUMI_PYTHON_CMD or python3 from PATH.
func interpreter(root, virtualenv string) (string, []string, error) {
	env := make([]string, 0, len(os.Environ())+4)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHONHOME=") {
			env = append(env, kv)
		}
	}
	if virtualenv == "" {
		if cmd := os.Getenv("PULUMI_PYTHON_CMD"); cmd != "" {
			return cmd, env, nil
		}
		return "python3", env, nil
	}
	if !filepath.IsAbs(virtualenv) {
		virtualenv = filepath.Join(root, virtualenv)
	}
	python := filepath.Join(virtualenv, "bin", "python")
	if _, err := os.Stat(python); err != nil {
		return "", nil, fmt.Errorf(
			"the 'virtualenv' option in Pulumi.yaml points at %s, but %s does not exist; run `make setup`",
			virtualenv, python)
	}
	bin := filepath.Join(virtualenv, "bin")
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = "PATH=" + bin + string(os.PathListSeparator) + strings.TrimPrefix(kv, "PATH=")
		}
	}
	env = append(env, "VIRTUAL_ENV="+virtualenv)
	return python, env, nil
}
