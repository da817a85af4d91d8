package vault

import (
	"context"
	"errors"

	"github.com/sesamehq/sesame"
)

// CreateWorkspace creates an empty workspace.
func (v *Vault) CreateWorkspace(ctx context.Context, name string) (sesame.Workspace, error) {
	if err := checkNames(name, ""); err != nil {
		return sesame.Workspace{}, err
	}
	ws := sesame.Workspace{Name: name, CreatedAt: v.now().UTC()}
	err := v.store.CreateWorkspace(ctx, ws)
	v.workspaceChanged(ctx)
	if errors.Is(err, sesame.ErrAlreadyExists) {
		return ws, sesame.Errorf(sesame.CodeAlreadyExists, "workspace %q already exists", name)
	}
	return ws, err
}

// GetWorkspace returns one workspace.
func (v *Vault) GetWorkspace(ctx context.Context, name string) (sesame.Workspace, error) {
	if err := checkNames(name, ""); err != nil {
		return sesame.Workspace{}, err
	}
	ws, err := v.store.GetWorkspace(ctx, name)
	if errors.Is(err, sesame.ErrNotFound) {
		return ws, sesame.Errorf(sesame.CodeNotFound, "workspace %q not found", name)
	}
	return ws, err
}

// ListWorkspaces returns a page of workspaces after the cursor name.
func (v *Vault) ListWorkspaces(ctx context.Context, after string, limit int) ([]sesame.Workspace, error) {
	return v.store.ListWorkspaces(ctx, after, limit)
}

// DeleteWorkspace deletes a workspace; one that holds credentials needs force.
func (v *Vault) DeleteWorkspace(ctx context.Context, name string, force bool) error {
	if err := checkNames(name, ""); err != nil {
		return err
	}
	if name == sesame.DefaultWorkspace {
		return sesame.Errorf(sesame.CodeProtected, "the %q workspace cannot be deleted", name)
	}
	err := v.store.DeleteWorkspace(ctx, name, force)
	v.records.Clear()
	v.workspaceChanged(ctx) // its grants went with it
	return err
}

// CopyWorkspace creates workspace to with the structure of from: every credential with its
// type and public fields, and its secret fields marked as needing a value.
func (v *Vault) CopyWorkspace(ctx context.Context, from, to string) (sesame.Workspace, error) {
	if err := checkNames(from, ""); err != nil {
		return sesame.Workspace{}, err
	}
	if err := checkNames(to, ""); err != nil {
		return sesame.Workspace{}, err
	}
	ws := sesame.Workspace{Name: to, CreatedAt: v.now().UTC()}
	err := v.store.CopyWorkspace(ctx, from, to, ws.CreatedAt)
	v.workspaceChanged(ctx)
	return ws, err
}
