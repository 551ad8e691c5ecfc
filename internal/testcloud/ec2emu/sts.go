package ec2emu

// dispatchSTS answers the one STS call tools make to learn who they are. Runs under s.mu.
func (s *Server) dispatchSTS(req *request) (any, *apiError) {
	switch req.action {
	case "GetCallerIdentity":
		return "<Arn>arn:aws:iam::" + s.account + ":user/ec2emu</Arn><UserId>AIDAEC2EMULATOR</UserId><Account>" +
			s.account + "</Account>", nil
	}
	return nil, errf("InvalidAction", "Could not find operation %s for version 2011-06-15 (not implemented by the emulator)", req.action)
}
