package api

import (
	"context"
	"errors"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// AdminServer serves AdminService.
type AdminServer struct {
	pb.UnimplementedAdminServiceServer
	Credentials *access.Store
	Audit       *access.Audit
	// Merchants, when set, is where a merchant credential's merchant must
	// exist.
	Merchants *merchant.Store
}

var roles = map[pb.Role]access.Role{
	pb.Role_ROLE_MERCHANT: access.RoleMerchant,
	pb.Role_ROLE_BANK:     access.RoleBank,
	pb.Role_ROLE_AUDITOR:  access.RoleAuditor,
	pb.Role_ROLE_ADMIN:    access.RoleAdmin,
}

func credentialToProto(c access.Credential) *pb.Credential {
	out := &pb.Credential{
		Id: c.CredentialID, Name: c.Name, Role: reverse(roles, c.Role), Merchant: c.Merchant, Provider: c.Provider,
		Bank: c.Bank, Markets: c.Markets, ClientCertSha256: c.CertSHA256, CreateTime: timestamppb.New(c.CreatedAt),
	}
	if !c.ExpiresAt.IsZero() {
		out.ExpireTime = timestamppb.New(c.ExpiresAt)
	}
	if !c.RevokedAt.IsZero() {
		out.RevokeTime = timestamppb.New(c.RevokedAt)
	}
	return out
}

func (s *AdminServer) IssueCredential(ctx context.Context, req *pb.IssueCredentialRequest) (*pb.IssueCredentialResponse, error) {
	c := req.GetCredential()
	role, ok := roles[c.GetRole()]
	if !ok {
		return nil, fieldError("credential.role", errors.New("must be ROLE_MERCHANT, ROLE_BANK, ROLE_AUDITOR or ROLE_ADMIN"))
	}
	ir := access.IssueRequest{Name: c.GetName(), Role: role, Merchant: c.GetMerchant(), Provider: c.GetProvider(), Bank: c.GetBank(), Markets: c.GetMarkets(), CertSHA256: c.GetClientCertSha256()}
	if ttl := req.GetTtl(); ttl != nil {
		if err := ttl.CheckValid(); err != nil {
			return nil, fieldError("ttl", err)
		}
		ir.TTL = ttl.AsDuration()
		if ir.TTL <= 0 {
			return nil, fieldError("ttl", errors.New("must be positive"))
		}
	}
	if ir.Role == access.RoleMerchant && ir.Merchant != "" && s.Merchants != nil {
		// A credential for no merchant would open no door but look as if
		// it did.
		if _, err := s.Merchants.GetMerchant(ctx, ir.Merchant); err != nil {
			return nil, toStatus(ctx, ledger.RenameField(err, "code", "credential.merchant"))
		}
	}
	cred, secret, err := s.Credentials.Issue(ctx, ir)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.IssueCredentialResponse{Credential: credentialToProto(cred), Secret: secret}, nil
}

func (s *AdminServer) ListCredentials(ctx context.Context, req *pb.ListCredentialsRequest) (*pb.ListCredentialsResponse, error) {
	var role access.Role
	if req.GetRole() != pb.Role_ROLE_UNSPECIFIED {
		r, ok := roles[req.GetRole()]
		if !ok {
			return nil, fieldError("role", errors.New("unknown role"))
		}
		role = r
	}
	creds, next, err := s.Credentials.List(ctx, role, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &pb.ListCredentialsResponse{NextPageToken: next}
	for _, c := range creds {
		resp.Credentials = append(resp.Credentials, credentialToProto(c))
	}
	return resp, nil
}

func (s *AdminServer) RevokeCredential(ctx context.Context, req *pb.RevokeCredentialRequest) (*pb.RevokeCredentialResponse, error) {
	c, err := s.Credentials.Revoke(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.RevokeCredentialResponse{Credential: credentialToProto(c)}, nil
}

func (s *AdminServer) ListAuditEvents(ctx context.Context, req *pb.ListAuditEventsRequest) (*pb.ListAuditEventsResponse, error) {
	// What this ledgerd recorded before this call is listed, however
	// recently; another ledgerd's events follow within its flush interval.
	if err := s.Audit.Sync(ctx); err != nil {
		return nil, toStatus(ctx, err)
	}
	events, next, err := access.ListEvents(ctx, s.Credentials.Pool(), req.GetCredentialId(), req.GetDeniedOnly(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &pb.ListAuditEventsResponse{NextPageToken: next}
	for _, e := range events {
		resp.AuditEvents = append(resp.AuditEvents, &pb.AuditEvent{
			Id: e.ID, Time: timestamppb.New(e.At), CredentialId: e.CredentialID, Role: reverse(roles, e.Role),
			Method: e.Method, Target: e.Target, Code: e.Code, Message: e.Message,
		})
	}
	return resp, nil
}
