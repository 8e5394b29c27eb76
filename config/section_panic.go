package config

// panicThreshold reads panic_threshold: the share of a service's real servers, in
// percent, that may fail their health checks within one check interval before the
// load balancer suspects itself rather than the servers (see Service.PanicThreshold).
// 0 turns it off; the default is DefaultPanicThreshold for layer 4 and 0 for layer 7.
func (p *parser) panicThreshold(f fields, path string, s *Service) {
	if v := f.get("panic_threshold"); v != nil {
		if x, ok := p.integer(v, path+".panic_threshold", 0, 99); ok {
			s.PanicThreshold = int(x)
		}
		return
	}
	if s.Layer == Layer4 {
		s.PanicThreshold = DefaultPanicThreshold
	}
}
