from twisted.application.service import ServiceMaker

statelessd = ServiceMaker("statelessd", "stateless.tap", "stateless configuration daemon", "statelessd")
